"""moto's server with IAM enforcement that evaluates principals the way AWS does.

moto 5.2.5 evaluates the caller's identity policies and the target role's trust policy, but in
ways that refuse what AWS allows, so a least-privilege setup could not run on it at all:

- A trust policy naming a role ARN or an account (`arn:aws:iam::ACCT:root`) never matches the
  caller's session ARN, and a statement that names another principal denies the whole request
  instead of being skipped. AWS: a role ARN matches that role's sessions, an account matches
  every principal of the account that its own policies allow to assume the role.
- It knows the resource of a request only for STS, IAM, S3 and SQS; elsewhere it compares "*" with
  the statement's Resource, so every resource-scoped Allow is ignored.
- A condition on an identity-policy statement is compared with values moto never collects, and a
  failed comparison denies the request even on an Allow.
- A `Service` principal in a trust policy makes AssumeRole answer HTTP 500.
- A role that CloudFormation made keeps its inline policies as objects, which the evaluator
  cannot read (HTTP 500 on every call of that role's sessions).
- AssumeRole looks the target role up in the caller's own account: into another account it
  checks no trust policy at all, and into a role that does not exist it succeeds (every call of
  that session then fails with HTTP 500; AWS refuses the AssumeRole).
- CloudFormation's ExecuteChangeSet and DeleteChangeSet of a change set that is gone (deleted by
  another deploy) answer HTTP 500 (an unbound variable); AWS answers ChangeSetNotFound.
- CloudFormation's ExecuteChangeSet of an update keeps the stack's tags and parameters from its
  creation (the resources do change); AWS takes the change set's. A deploy that compares them
  would find a stack back on its first build "unchanged".
- CodePipeline's GetPipeline gives the pipeline's created and updated times as ISO 8601 text,
  where the JSON protocol (and AWS) sends seconds since the epoch: the AWS SDK for Rust cannot
  read the answer.
- It recomputes a request's signature from its own re-encoding of a form body, which differs
  from the AWS SDK for Rust's (CloudFormation's CreateChangeSet fails with SignatureDoesNotMatch).

Here: signatures are not compared (unknown access keys are still refused); principals are matched
as AWS does; where moto does not know the resource or the condition
values, an Allow counts and a Deny does not (so the emulator checks actions, and resources only
for STS, IAM, S3 and SQS: the rendered-template tests check the rest); a session of the
emulator's own `operator` role (an administrator, who on AWS could rewrite the trust anyway) may
assume a role that trusts an AWS service or an identity provider, standing in for CodeBuild or
GitHub's OIDC, whose conditions it cannot check; a gone change set is ChangeSetNotFound; an
executed change set's tags and parameters become the stack's; a pipeline's times are numbers.
Nothing else of moto changes.
"""

import datetime
import json
import re
import sys

from moto.cloudformation import exceptions as cfn_exceptions
from moto.cloudformation import models as cfn_models
from moto.codepipeline import models as cp_models
from moto.iam import access_control as ac

NEUTRAL, PERMITTED, DENIED = (
    ac.PermissionResult.NEUTRAL,
    ac.PermissionResult.PERMITTED,
    ac.PermissionResult.DENIED,
)
STAND_IN = re.compile(r"^arn:[^:]+:sts::\d{12}:assumed-role/operator/[^/]+$")


def _values(v):
    return v if isinstance(v, list) else [v]


def _principal_matches(expected, caller):
    if expected == "*":
        return True
    if not isinstance(expected, dict):
        return False
    caller_account = caller.split(":")[4]
    for key, values in expected.items():
        for v in _values(values):
            if key != "AWS":
                # Service and Federated principals: only the stand-in session acts for them.
                if STAND_IN.match(caller):
                    return True
                continue
            if v in ("*", caller):
                return True
            account = re.fullmatch(r"(\d{12})|arn:[^:]+:iam::(\d{12}):root", v)
            if account and caller_account in account.groups():
                return True
            m = re.fullmatch(r"arn:([^:]+):iam::(\d{12}):role/(?:.*/)?([^/]+)", v)
            if m and caller.startswith(
                f"arn:{m.group(1)}:sts::{m.group(2)}:assumed-role/{m.group(3)}/"
            ):
                return True
    return False


def _stands_in_for_identity_provider(st, action, principal):
    """The stand-in's AssumeRole takes the place of AssumeRoleWithWebIdentity, whose token and
    claims the emulator cannot produce. (moto's CloudFormation also resolves a Ref to an OIDC
    provider to nothing, leaving the Principal empty: the statement's action is what tells.)"""
    return (
        principal is not None
        and STAND_IN.match(principal)
        and action == "sts:AssumeRole"
        and "sts:AssumeRoleWithWebIdentity" in _values(st.get("Action", []))
    )


def _is_action_permitted(self, action, resource="*", principal=None, incoming=None):
    st = self._statement
    if _stands_in_for_identity_provider(st, action, principal):
        return PERMITTED if st.get("Effect") == "Allow" else NEUTRAL
    if "NotAction" in st:
        concerned = not self._check_element_matches("NotAction", action)
    else:
        concerned = self._check_element_matches("Action", action)
    if not concerned:
        return NEUTRAL
    allow = st.get("Effect") == "Allow"
    if principal is not None and not _principal_matches(st.get("Principal"), principal):
        return NEUTRAL
    if "Condition" in st:
        if incoming is None:
            # An identity policy: moto collects no request context to compare with.
            if not allow:
                return NEUTRAL
        elif not self._check_conditions(incoming):
            return NEUTRAL
    if "Resource" in st:
        if resource == "*":
            if not allow and "*" not in _values(st["Resource"]):
                return NEUTRAL
        elif not self._check_element_matches("Resource", resource):
            return NEUTRAL
    return PERMITTED if allow else DENIED


ac.IAMPolicyStatement.is_action_permitted = _is_action_permitted

_policy_init = ac.IAMPolicy.__init__


def _policy_from_object(self, policy):
    if isinstance(policy, dict) and "Statement" in policy:
        policy = json.dumps(policy)
    _policy_init(self, policy)


ac.IAMPolicy.__init__ = _policy_from_object

def _role(arn):
    """The role an ARN names, looked up in the account the ARN names; None if there is none."""
    from moto.iam.models import iam_backends

    parts = arn.split(":")
    try:
        return iam_backends[parts[4]][parts[1]].get_role_by_arn(arn)
    except Exception:
        return None


def _is_assuming_role_operation(self, resource):
    return self._action in ac.REQUIRE_RESOURCE_ACCESS_POLICIES_CHECK and ":role/" in resource


def _check_role_trust_relationship(self, role_arn):
    role = _role(role_arn)
    if role is None:
        return False
    trust = ac.IAMPolicy(role.assume_role_policy_document)
    result = trust.is_action_permitted(
        self._action,
        role_arn,
        self._access_key.arn,
        ac.format_incoming_conditional_values(self._data),
    )
    return result == PERMITTED


ac.IAMRequestBase._is_assuming_role_operation = _is_assuming_role_operation
ac.IAMRequestBase._check_role_trust_relationship = _check_role_trust_relationship
ac.IAMRequestBase.check_signature = lambda self: None


class ChangeSetNotFound(cfn_exceptions.CloudFormationError):
    code = "ChangeSetNotFoundException"

    def __init__(self, name):
        super().__init__(f"ChangeSet [{name}] does not exist")


def _known_change_set(backend, name):
    return name in backend.change_sets or any(
        cs.change_set_name == name for cs in backend.change_sets.values()
    )


def _refusing_a_gone_change_set(method):
    def checked(self, change_set_name, *args, **kwargs):
        if not _known_change_set(self, change_set_name):
            raise ChangeSetNotFound(change_set_name)
        return method(self, change_set_name, *args, **kwargs)

    return checked


for _name in ("execute_change_set", "delete_change_set"):
    setattr(
        cfn_models.CloudFormationBackend,
        _name,
        _refusing_a_gone_change_set(getattr(cfn_models.CloudFormationBackend, _name)),
    )

def _taking_the_change_sets_tags_and_parameters(method):
    def executed(self, change_set_name, *args, **kwargs):
        change_set = self.change_sets.get(change_set_name) or next(
            (cs for cs in self.change_sets.values() if cs.change_set_name == change_set_name),
            None,
        )
        method(self, change_set_name, *args, **kwargs)
        stack = self.stacks[change_set.stack_id]
        if change_set.tags is not None:
            stack.tags = change_set.tags
        stack.parameters = change_set.parameters

    return executed


cfn_models.CloudFormationBackend.execute_change_set = _taking_the_change_sets_tags_and_parameters(
    cfn_models.CloudFormationBackend.execute_change_set
)

def _pipeline_metadata(self):
    seconds = lambda t: t.replace(tzinfo=datetime.timezone.utc).timestamp()  # noqa: E731
    return {
        "pipelineArn": self._arn,
        "created": seconds(self._created),
        "updated": seconds(self._updated),
    }


cp_models.CodePipeline.metadata = property(_pipeline_metadata)

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main())
