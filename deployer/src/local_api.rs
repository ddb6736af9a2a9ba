//! The local stand-in for API Gateway and Lambda, which the emulator runs neither of: what the
//! pipeline's Verify checks when the pipeline runs on this machine. Each function a route of the
//! deployed stack reaches runs as the promoted artifact's own `bootstrap`, in Lambda mode, under
//! cargo-lambda's Lambda runtime API, with the Handler, environment and execution role the stack
//! gave it; a router sends each request to the function its route names in the deployed
//! template, as API Gateway would. Only the emulator's endpoint and the credentials differ: the
//! emulator lets its operator take a role that trusts lambda.amazonaws.com (on AWS nobody can),
//! so each function's calls are checked against its own role's policies.

use crate::aws::Session;
use aws_sdk_cloudformation::types::StackResource;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the local stand-in for API Gateway: {0}")]
    Template(String),
    #[error("the local stand-in for API Gateway: {0}")]
    Aws(String),
    #[error(
        "the local stand-in for API Gateway needs cargo-lambda (its Lambda runtime API): `scripts/emulator install` puts it in .venv, or set CARGO_LAMBDA to its path; or pass --verify-url to check an API of your own"
    )]
    NoCargoLambda,
    #[error("the local stand-in for API Gateway: {0}")]
    Start(String),
}

/// One route of the HTTP API: `GET /products/{id}` or `$default`, and the function it reaches.
#[derive(Debug, Clone, PartialEq)]
struct Route {
    /// None: ANY.
    method: Option<String>,
    /// None: `$default`.
    path: Option<Vec<Segment>>,
    /// The function's logical id.
    function: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Parameter,
    /// `{proxy+}`: the rest of the path.
    Greedy,
}

impl Route {
    fn parse(key: &str, function: String) -> Result<Route, String> {
        if key == "$default" {
            return Ok(Route {
                method: None,
                path: None,
                function,
            });
        }
        let (method, path) = key
            .split_once(' ')
            .ok_or_else(|| format!("route key {key:?} is not \"METHOD /path\" or $default"))?;
        let segments = path
            .trim_start_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                if s.starts_with('{') && s.ends_with("+}") {
                    Segment::Greedy
                } else if s.starts_with('{') && s.ends_with('}') {
                    Segment::Parameter
                } else {
                    Segment::Literal(s.to_string())
                }
            })
            .collect();
        Ok(Route {
            method: (method != "ANY").then(|| method.to_string()),
            path: Some(segments),
            function,
        })
    }

    /// How well the route matches (higher is more specific, as API Gateway prefers), or None.
    fn score(&self, method: &str, path: &str) -> Option<(u8, usize, u8)> {
        if self.method.as_deref().is_some_and(|m| m != method) {
            return None;
        }
        let by_method = u8::from(self.method.is_some());
        let Some(segments) = &self.path else {
            return Some((0, 0, by_method));
        };
        let parts: Vec<&str> = path
            .trim_start_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let mut literals = 0;
        for (i, segment) in segments.iter().enumerate() {
            match segment {
                Segment::Greedy => return (parts.len() > i).then_some((1, literals, by_method)),
                Segment::Parameter if i < parts.len() => {}
                Segment::Literal(l) if parts.get(i) == Some(&l.as_str()) => literals += 1,
                _ => return None,
            }
        }
        (parts.len() == segments.len()).then_some((2, literals, by_method))
    }
}

/// The routes of a CloudFormation template's HTTP API, each with its function's logical id.
fn routes(template: &Value) -> Result<Vec<Route>, String> {
    let resources = template["Resources"]
        .as_object()
        .ok_or("the deployed template has no Resources")?;
    let of_type = |t: &'static str| {
        resources
            .iter()
            .filter(move |(_, r)| r["Type"] == t)
            .map(|(id, r)| (id, &r["Properties"]))
    };
    // A gradual deploy's integration invokes an alias (or a version) of the function: the
    // stand-in runs the function it points at (the emulator makes no alias).
    let function_of = |id: String| match resources.get(&id) {
        Some(r)
            if matches!(
                r["Type"].as_str(),
                Some("AWS::Lambda::Alias" | "AWS::Lambda::Version")
            ) =>
        {
            referenced(&r["Properties"]["FunctionName"])
        }
        _ => Some(id),
    };
    let integrations: BTreeMap<&String, String> = of_type("AWS::ApiGatewayV2::Integration")
        .filter_map(|(id, p)| Some((id, function_of(referenced(&p["IntegrationUri"])?)?)))
        .collect();
    let mut routes = vec![];
    for (id, p) in of_type("AWS::ApiGatewayV2::Route") {
        if p["AuthorizationType"].as_str().is_some_and(|a| a != "NONE") {
            return Err(format!(
                "route {id} takes an authorizer ({}), which the stand-in does not run; verify it on AWS",
                p["AuthorizationType"]
            ));
        }
        let key = p["RouteKey"]
            .as_str()
            .ok_or_else(|| format!("route {id} has no RouteKey"))?;
        let function = referenced(&p["Target"])
            .and_then(|integration| integrations.get(&integration).cloned())
            .ok_or_else(|| {
                format!("route {id} ({key}) reaches no Lambda integration the stand-in can follow")
            })?;
        routes.push(Route::parse(key, function)?);
    }
    if routes.is_empty() {
        return Err("the deployed template has no AWS::ApiGatewayV2::Route to serve".into());
    }
    Ok(routes)
}

/// The logical id an intrinsic names: `{"Ref": X}`, `{"Fn::GetAtt": [X, "Arn"]}`, or
/// `{"Fn::Sub": "...${X}..."}` / `"${X.Arn}"`.
fn referenced(value: &Value) -> Option<String> {
    if let Some(id) = value["Ref"].as_str() {
        return Some(id.to_string());
    }
    if let Some(id) = value["Fn::GetAtt"][0].as_str() {
        return Some(id.to_string());
    }
    // The first `${...}` that is not a pseudo parameter such as `${AWS::Region}`.
    value["Fn::Sub"]
        .as_str()?
        .split("${")
        .skip(1)
        .filter_map(|s| s.split_once('}'))
        .map(|(name, _)| name.split('.').next().unwrap_or(name))
        .find(|name| !name.starts_with("AWS::"))
        .map(str::to_string)
}

/// A running stand-in: the router's URL; the processes stop when it is dropped.
pub struct LocalApi {
    pub url: String,
    /// The functions serving it, by logical id, and each one's log file.
    pub functions: Vec<(String, PathBuf)>,
    _runtimes: Vec<tokio::process::Child>,
    /// The router, and a task per function owning its process (killed when aborted).
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for LocalApi {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Where cargo-lambda is: CARGO_LAMBDA, the project's .venv, or the PATH.
pub fn cargo_lambda(root: &Path) -> Result<PathBuf, Error> {
    if let Some(path) = std::env::var_os("CARGO_LAMBDA") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path).ok_or(Error::NoCargoLambda);
    }
    let venv = root.join(".venv/bin/cargo-lambda");
    if venv.is_file() {
        return Ok(venv);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("cargo-lambda"))
        .find(|p| p.is_file())
        .ok_or(Error::NoCargoLambda)
}

/// A port free on 127.0.0.1 now.
fn free_port() -> Result<u16, Error> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::Start(format!("no free port: {e}")))
}

/// Starts the stand-in for `stack` (reached through `reader`), running the artifact (`zip`, which
/// each function must be running) as each of its routed functions, each with credentials of its own role (taken by
/// `operator`). `root` is where cargo-lambda is looked for; each function's output goes to
/// `<logs>/stand-in-<function>.log`.
pub async fn start(
    reader: &Session,
    operator: &Session,
    stack: &str,
    zip: &[u8],
    root: &Path,
    logs: &Path,
) -> Result<LocalApi, Error> {
    let cargo_lambda = cargo_lambda(root)?;
    let aws = |what: &str, e: String| Error::Aws(format!("{what} of {stack}: {e}"));
    let cfn = reader.cloudformation();
    let body = cfn
        .get_template()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| aws("GetTemplate", crate::aws::error_text(&e)))?
        .template_body
        .unwrap_or_default();
    let template: Value = serde_json::from_str(&body)
        .map_err(|e| Error::Template(format!("the deployed template is not JSON: {e}")))?;
    let routes = routes(&template).map_err(Error::Template)?;
    let resources: Vec<StackResource> = cfn
        .describe_stack_resources()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| aws("DescribeStackResources", crate::aws::error_text(&e)))?
        .stack_resources
        .unwrap_or_default();

    let dir = tempfile::tempdir().map_err(|e| Error::Start(e.to_string()))?;
    // cargo-lambda serves its runtime API from inside a Cargo project; an empty one will do.
    let project = dir.path().join("project");
    std::fs::create_dir_all(project.join("src"))
        .and_then(|()| {
            std::fs::write(
                project.join("Cargo.toml"),
                "[package]\nname = \"stand-in\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n[workspace]\n",
            )
        })
        .and_then(|()| std::fs::write(project.join("src/main.rs"), "fn main() {}\n"))
        .map_err(|e| Error::Start(format!("cannot write {}: {e}", project.display())))?;

    let bootstrap = unpack_bootstrap(zip, dir.path())?;
    // Lambda's CodeSha256: what each function must be running for the stand-in to stand in.
    let code_sha = {
        use sha2::Digest;
        aws_smithy_types::base64::encode(sha2::Sha256::digest(zip))
    };
    let bootstrap = bootstrap.as_path();
    let mut functions: Vec<String> = routes.iter().map(|r| r.function.clone()).collect();
    functions.sort();
    functions.dedup();
    let mut runtimes = vec![];
    let mut tasks = vec![];
    let mut down = BTreeMap::new();
    let mut ports = BTreeMap::new();
    let mut function_logs = vec![];
    let mut timeouts = BTreeMap::new();
    for logical in &functions {
        let physical = resources
            .iter()
            .find(|r| r.logical_resource_id() == Some(logical))
            .and_then(|r| r.physical_resource_id())
            .ok_or_else(|| aws("the resources", format!("no function {logical}")))?;
        let config = reader
            .lambda()
            .get_function_configuration()
            .function_name(physical)
            .send()
            .await
            .map_err(|e| aws("GetFunctionConfiguration", crate::aws::error_text(&e)))?;
        if config.code_sha256() != Some(code_sha.as_str()) {
            return Err(Error::Start(format!(
                "{logical} runs code {}, not this run's artifact ({code_sha}); nothing to stand in for",
                config.code_sha256().unwrap_or("unknown")
            )));
        }
        let role = config.role().unwrap_or_default();
        let credentials = aws_sdk_sts::Client::new(&operator.config)
            .assume_role()
            .role_arn(role)
            .role_session_name("local-stand-in")
            .send()
            .await
            .map_err(|e| aws(&format!("taking {role}"), crate::aws::error_text(&e)))?
            .credentials
            .ok_or_else(|| aws("AssumeRole", "no credentials".into()))?;
        let timeout = u64::try_from(config.timeout().unwrap_or(3)).unwrap_or(3);
        timeouts.insert(logical.clone(), Duration::from_secs(timeout));

        let port = free_port()?;
        let runtime_log = dir.path().join(format!("{logical}-runtime.log"));
        let log = |path: &Path| {
            std::fs::File::create(path)
                .map_err(|e| Error::Start(format!("cannot write {}: {e}", path.display())))
        };
        let mut runtime = tokio::process::Command::new(&cargo_lambda);
        runtime
            .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1"])
            .args(["-P", &port.to_string(), "--timeout", &timeout.to_string()])
            .current_dir(&project)
            .stdin(std::process::Stdio::null())
            .stdout(log(&runtime_log)?)
            .stderr(log(&runtime_log)?)
            .kill_on_drop(true);
        let mut runtime = runtime
            .spawn()
            .map_err(|e| Error::Start(format!("cannot run {}: {e}", cargo_lambda.display())))?;
        wait_for_port(port, &mut runtime, &runtime_log).await?;
        runtimes.push(runtime);

        // Only what Lambda sets (and the emulator's endpoint): nothing of this machine leaks in.
        let region = reader.config.region().map_or("us-east-1", |r| r.as_ref());
        let function_log = logs.join(format!("stand-in-{logical}.log"));
        let mut function = tokio::process::Command::new(bootstrap);
        function
            .env_clear()
            .envs(
                config
                    .environment()
                    .and_then(|e| e.variables())
                    .into_iter()
                    .flatten(),
            )
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("_HANDLER", config.handler().unwrap_or_default())
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", physical)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                config.memory_size().unwrap_or(128).to_string(),
            )
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{physical}"),
            )
            .env("AWS_REGION", region)
            .env("AWS_DEFAULT_REGION", region)
            .env("AWS_ACCESS_KEY_ID", credentials.access_key_id())
            .env("AWS_SECRET_ACCESS_KEY", credentials.secret_access_key())
            .env("AWS_SESSION_TOKEN", credentials.session_token())
            .envs(
                reader
                    .config
                    .endpoint_url()
                    .map(|url| ("AWS_ENDPOINT_URL", url)),
            )
            .env(
                "LAMBDA_TASK_ROOT",
                bootstrap.parent().unwrap_or(Path::new("/")),
            )
            .stdin(std::process::Stdio::null())
            .stdout(log(&function_log)?)
            .stderr(log(&function_log)?)
            .kill_on_drop(true);
        let mut function = function
            .spawn()
            .map_err(|e| Error::Start(format!("cannot run {}: {e}", bootstrap.display())))?;
        // A function whose process ended (it failed to start, or crashed) answers at once, as
        // Lambda does, instead of leaving requests to wait for a runtime that never asks.
        let ended = Arc::new(AtomicBool::new(false));
        let flag = ended.clone();
        tasks.push(tokio::spawn(async move {
            let _ = function.wait().await;
            flag.store(true, Ordering::Relaxed);
        }));
        down.insert(logical.clone(), ended);
        ports.insert(logical.clone(), port);
        function_logs.push((logical.clone(), function_log));
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::Start(format!("cannot listen: {e}")))?;
    let url = format!(
        "http://{}",
        listener
            .local_addr()
            .map_err(|e| Error::Start(e.to_string()))?
    );
    let router = Arc::new(Router {
        routes,
        ports,
        down,
        timeouts,
        client: hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http(),
    });
    tasks.push(tokio::spawn(serve(listener, router)));
    Ok(LocalApi {
        url,
        functions: function_logs,
        _runtimes: runtimes,
        tasks,
        _dir: dir,
    })
}

/// The artifact's `bootstrap`, written executable into `dir`.
fn unpack_bootstrap(zip: &[u8], dir: &Path) -> Result<PathBuf, Error> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let bad = |e: String| Error::Start(format!("the artifact's bootstrap: {e}"));
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(zip)).map_err(|e| bad(e.to_string()))?;
    let mut bytes = vec![];
    archive
        .by_name("bootstrap")
        .map_err(|e| bad(e.to_string()))?
        .read_to_end(&mut bytes)
        .map_err(|e| bad(e.to_string()))?;
    let path = dir.join("task/bootstrap");
    std::fs::create_dir_all(dir.join("task"))
        .and_then(|()| std::fs::write(&path, bytes))
        .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)))
        .map_err(|e| bad(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

/// Waits until cargo-lambda listens on `port`; its log says why when it never does.
async fn wait_for_port(
    port: u16,
    process: &mut tokio::process::Child,
    log: &Path,
) -> Result<(), Error> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        let exited = process.try_wait().ok().flatten();
        if exited.is_some() || tokio::time::Instant::now() > deadline {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            return Err(Error::Start(format!(
                "cargo-lambda's runtime API did not start on port {port} ({}): {}",
                exited.map_or("no answer within 30s".into(), |s| s.to_string()),
                text.trim()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Router {
    routes: Vec<Route>,
    ports: BTreeMap<String, u16>,
    /// Set once a function's process has ended.
    down: BTreeMap<String, Arc<AtomicBool>>,
    timeouts: BTreeMap<String, Duration>,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
}

type Answer = hyper::Response<Full<Bytes>>;

fn answer(status: u16, message: &str) -> Answer {
    let mut response = hyper::Response::new(Full::new(Bytes::from(
        serde_json::json!({ "message": message }).to_string(),
    )));
    *response.status_mut() = hyper::StatusCode::from_u16(status).expect("a status code");
    response.headers_mut().insert(
        "content-type",
        "application/json".parse().expect("a header"),
    );
    response
}

impl Router {
    /// The function for a request, as API Gateway picks the route: the most specific match.
    fn function(&self, method: &str, path: &str) -> Option<&Route> {
        self.routes
            .iter()
            .filter_map(|r| Some((r.score(method, path)?, r)))
            .max_by_key(|(score, _)| *score)
            .map(|(_, r)| r)
    }

    async fn forward(&self, request: hyper::Request<hyper::body::Incoming>) -> Answer {
        let (parts, body) = request.into_parts();
        let Some(route) = self.function(parts.method.as_str(), parts.uri.path()) else {
            // API Gateway's own answer for a path no route takes.
            return answer(404, "Not Found");
        };
        if self.down[&route.function].load(Ordering::Relaxed) {
            return answer(502, "Internal Server Error");
        }
        let body = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return answer(400, "Bad Request"),
        };
        let port = self.ports[&route.function];
        let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut forwarded = hyper::Request::builder()
            .method(parts.method.clone())
            .uri(format!(
                "http://127.0.0.1:{port}/lambda-url/_{path_and_query}"
            ));
        for (name, value) in &parts.headers {
            if name != hyper::header::HOST {
                forwarded = forwarded.header(name, value);
            }
        }
        let Ok(forwarded) = forwarded.body(Full::new(body)) else {
            return answer(400, "Bad Request");
        };
        let limit = self.timeouts[&route.function] + Duration::from_secs(5);
        let response = match tokio::time::timeout(limit, self.client.request(forwarded)).await {
            Ok(Ok(r)) => r,
            // API Gateway's answers when the integration fails or takes too long.
            Ok(Err(_)) => return answer(502, "Internal Server Error"),
            Err(_) => return answer(504, "Service Unavailable"),
        };
        let (parts, body) = response.into_parts();
        match body.collect().await {
            Ok(body) => hyper::Response::from_parts(parts, Full::new(body.to_bytes())),
            Err(_) => answer(502, "Internal Server Error"),
        }
    }
}

async fn serve(listener: tokio::net::TcpListener, router: Arc<Router>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let router = router.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let router = router.clone();
                async move { Ok::<_, std::convert::Infallible>(router.forward(request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_take_the_most_specific_route_as_api_gateway_picks_it() {
        let template = serde_json::json!({"Resources": {
            "Q": {"Type": "AWS::ApiGatewayV2::Integration", "Properties": {"IntegrationUri": {"Fn::GetAtt": ["QueryFunction", "Arn"]}}},
            "C": {"Type": "AWS::ApiGatewayV2::Integration", "Properties": {"IntegrationUri": {"Fn::Sub": "arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${CommandFunction.Arn}/invocations"}}},
            "Default": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {"RouteKey": "$default", "Target": {"Fn::Sub": "integrations/${Q}"}}},
            "Get": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {"RouteKey": "GET /products/{id}", "Target": {"Fn::Sub": "integrations/${Q}"}}},
            "Put": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {"RouteKey": "PUT /products/{id}", "Target": {"Fn::Join": ["/", ["integrations", {"Ref": "C"}]]}}},
            "Mine": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {"RouteKey": "GET /products/mine", "Target": {"Fn::Sub": "integrations/${C}"}}},
            "Files": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {"RouteKey": "ANY /files/{proxy+}", "Target": {"Fn::Sub": "integrations/${C}"}}},
        }});
        // Fn::Join is not followed: that route is named as one the stand-in cannot follow.
        let err = routes(&template).unwrap_err();
        assert!(
            err.contains("route Put (PUT /products/{id}) reaches no Lambda integration"),
            "{err}"
        );
        let mut template = template;
        template["Resources"]["Put"]["Properties"]["Target"] =
            serde_json::json!({"Fn::Sub": "integrations/${C}"});
        let router = Router {
            routes: routes(&template).unwrap(),
            ports: BTreeMap::new(),
            down: BTreeMap::new(),
            timeouts: BTreeMap::new(),
            client: hyper_util::client::legacy::Client::builder(
                hyper_util::rt::TokioExecutor::new(),
            )
            .build_http(),
        };
        let to = |method: &str, path: &str| {
            router
                .function(method, path)
                .map(|r| r.function.clone())
                .unwrap_or_default()
        };
        assert_eq!(to("GET", "/products/01ARZ"), "QueryFunction");
        assert_eq!(to("PUT", "/products/01ARZ"), "CommandFunction");
        assert_eq!(to("GET", "/products/mine"), "CommandFunction");
        assert_eq!(to("DELETE", "/files/a/b"), "CommandFunction");
        // What no route takes goes to $default, here the query function.
        assert_eq!(to("POST", "/products/01ARZ"), "QueryFunction");
        assert_eq!(to("GET", "/files"), "QueryFunction");
    }

    #[test]
    fn an_integration_through_an_alias_runs_the_aliased_function() {
        let template = serde_json::json!({"Resources": {
            "QueryFunction": {"Type": "AWS::Lambda::Function", "Properties": {}},
            "QueryAlias": {"Type": "AWS::Lambda::Alias", "Properties": {"FunctionName": {"Ref": "QueryFunction"}, "Name": "live"}},
            "Q": {"Type": "AWS::ApiGatewayV2::Integration", "Properties": {"IntegrationUri": {"Ref": "QueryAlias"}}},
            "Get": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {"RouteKey": "GET /products", "Target": {"Fn::Sub": "integrations/${Q}"}}},
        }});
        let routes = routes(&template).unwrap();
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].function, "QueryFunction");
    }

    #[test]
    fn routes_behind_an_authorizer_are_refused_not_served_open() {
        let template = serde_json::json!({"Resources": {
            "Q": {"Type": "AWS::ApiGatewayV2::Integration", "Properties": {"IntegrationUri": {"Fn::GetAtt": ["QueryFunction", "Arn"]}}},
            "Post": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {"RouteKey": "POST /products", "AuthorizationType": "JWT", "Target": {"Fn::Sub": "integrations/${Q}"}}},
        }});
        let err = routes(&template).unwrap_err();
        assert!(
            err.contains("route Post takes an authorizer (\"JWT\")"),
            "{err}"
        );
    }
}
