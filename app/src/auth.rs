//! Passwords (argon2id) and tokens (HS256 JWTs with an expiry). No AWS, no HTTP.

use crate::domain::{Email, Password, UserId};
use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, SaltString};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub const TOKEN_TTL_SECS: i64 = 3600;
/// HS256 keys shorter than the hash output weaken it.
pub const SECRET_MIN_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the token signing secret must be at least {SECRET_MIN_BYTES} bytes")]
    WeakSecret,
    #[error("the token audience (the stack's name) must not be empty")]
    NoAudience,
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// How many password hashes run at once in a process. Each argon2id hash takes a 19 MiB
/// buffer, which the allocator of the thread that ran it keeps afterwards: running them on this
/// many long-lived threads bounds that memory (about 40 MiB) and the CPU a burst of logins takes,
/// where tokio's blocking pool would spread them over hundreds of threads.
pub const HASHING_THREADS: usize = 2;

type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads, started on first use.
fn hashers() -> &'static std::sync::Mutex<std::sync::mpsc::Sender<Job>> {
    static HASHERS: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Job>>> =
        std::sync::OnceLock::new();
    HASHERS.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..HASHING_THREADS {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("password-hashing-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while taking a job, not while running it.
                        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .expect("a thread starts");
        }
        std::sync::Mutex::new(tx)
    })
}

/// Runs `work` (a hash or a verification) on the hashing threads and waits for it without
/// holding an async worker; queued behind the others when all are busy.
pub async fn on_hashing_threads<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AuthError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    hashers()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send(Box::new(move || {
            let _ = tx.send(work());
        }))
        .map_err(|_| AuthError::Hash("the hashing threads stopped".into()))?;
    rx.await
        .map_err(|_| AuthError::Hash("a hashing thread stopped".into()))
}

/// Runs argon2id with `params` into `out`, in this thread's one working buffer: allocated once,
/// at the size of the usual parameters, and reused by every hash the thread computes (a fresh
/// 19 MiB allocation per hash is what the allocator kept, growing the process by one each time).
fn argon2_into(
    params: argon2::Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    thread_local! {
        static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let argon2 = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        let needed = argon2.params().block_count();
        if blocks.len() != needed {
            *blocks = vec![argon2::Block::new(); needed];
        }
        argon2.hash_password_into_with_memory(password, salt, out, &mut blocks[..])
    })
}

pub fn hash_password(password: &Password) -> Result<String, AuthError> {
    let failed = |e: &dyn std::fmt::Display| AuthError::Hash(e.to_string());
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(|e| failed(&e))?;
    let params = argon2::Params::default();
    let mut out = vec![
        0u8;
        params
            .output_len()
            .unwrap_or(argon2::Params::DEFAULT_OUTPUT_LEN)
    ];
    argon2_into(
        params.clone(),
        password.expose().as_bytes(),
        salt_bytes,
        &mut out,
    )
    .map_err(|e| failed(&e))?;
    let output = argon2::password_hash::Output::new(&out).map_err(|e| failed(&e))?;
    // The PHC string Argon2's own hash_password writes for these parameters.
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${output}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        salt.as_str()
    ))
}

/// A hash of 32 random bytes nobody kept, with Argon2::default()'s parameters, verified against
/// when the email is unknown, so that an unknown email costs the same time as a wrong password.
/// A constant: building it at run time would cost a second hash on a process's first login.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$ebIasLIKKqcKmFEC2Bmhzw$LLlq0W8IONGxHG8HTiC9uSvSZDcFO4u64+hpoEXF36E";

/// True only when `hash` is a hash of `password`. With no hash (unknown user) it does the same
/// work and answers false.
pub fn verify_password(password: &str, hash: Option<&str>) -> bool {
    let decoy = hash.is_none();
    let hash = hash.unwrap_or(DECOY_HASH);
    let ok = PasswordHash::new(hash).is_ok_and(|parsed| {
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return false;
        };
        let Ok(params) = argon2::Params::try_from(&parsed) else {
            return false;
        };
        let mut salt_bytes = [0u8; 64];
        let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
            return false;
        };
        let mut out = vec![0u8; expected.len()];
        parsed.algorithm == argon2::Algorithm::Argon2id.ident()
            && argon2_into(params, password.as_bytes(), salt_bytes, &mut out).is_ok()
            // Output's comparison takes the same time wherever the bytes differ.
            && argon2::password_hash::Output::new(&out).is_ok_and(|o| o == expected)
    });
    ok && !decoy
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    /// Where the user's record (and role) is found.
    email: String,
    /// The stack that issued the token and the one it is for: the same, since each stack signs
    /// and checks its own (a branch stack's token is refused by sandbox, and the other way).
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
}

/// Whom a valid token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub id: UserId,
    pub email: Email,
}

/// Signs and checks one stack's tokens: its secret, and its name as issuer and audience.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    audience: String,
}

impl Tokens {
    /// `audience`: the stack's own name (`catalog-sandbox`, a branch stack's name), which its
    /// tokens carry as `iss` and `aud` and which it requires of every token.
    pub fn new(secret: &[u8], audience: &str) -> Result<Self, AuthError> {
        if secret.len() < SECRET_MIN_BYTES {
            return Err(AuthError::WeakSecret);
        }
        if audience.trim().is_empty() {
            return Err(AuthError::NoAudience);
        }
        // HS256 only: "none" and every other algorithm are refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[audience]);
        Ok(Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            audience: audience.to_string(),
        })
    }

    /// A random secret for local runs that set none, and for catalogs that never issue tokens;
    /// tokens then die with the process.
    pub fn ephemeral(audience: &str) -> Result<Self, AuthError> {
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        Tokens::new(&secret, audience)
    }

    pub fn issue(&self, user: &UserId, email: &Email, now: OffsetDateTime) -> String {
        let iat = now.unix_timestamp();
        let claims = Claims {
            sub: user.0.clone(),
            email: email.as_str().to_string(),
            iss: self.audience.clone(),
            aud: self.audience.clone(),
            iat,
            exp: iat + TOKEN_TTL_SECS,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with a valid key cannot fail")
    }

    /// The user a token speaks for, if its signature, algorithm and expiry hold.
    pub fn verify(&self, token: &str) -> Option<Subject> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()?
            .claims;
        Some(Subject {
            id: UserId(claims.sub),
            email: Email::parse(&claims.email).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn tokens() -> Tokens {
        Tokens::new(&[7u8; 32], "catalog-sandbox").unwrap()
    }

    fn ann() -> Email {
        Email::parse("ann@example.com").unwrap()
    }

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let email = Email::parse("ann@example.com").unwrap();
        let hash =
            hash_password(&Password::parse("correct horse battery", &email).unwrap()).unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", Some(&hash)));
        assert!(!verify_password("correct horse batterY", Some(&hash)));
        assert!(!verify_password("correct horse battery", None));
        assert!(!verify_password("anything", Some("not a phc string")));
    }

    #[test]
    fn a_fresh_token_verifies_and_names_its_user() {
        let t = tokens();
        let token = t.issue(&UserId("u1".into()), &ann(), OffsetDateTime::now_utc());
        assert_eq!(
            t.verify(&token),
            Some(Subject {
                id: UserId("u1".into()),
                email: ann()
            })
        );
    }

    #[test]
    fn expired_tokens_are_refused() {
        let t = tokens();
        let an_hour_and_a_second_ago =
            OffsetDateTime::now_utc() - time::Duration::seconds(TOKEN_TTL_SECS + 1);
        assert_eq!(
            t.verify(&t.issue(&UserId("u1".into()), &ann(), an_hour_and_a_second_ago)),
            None
        );
    }

    #[test]
    fn another_secret_signature_is_refused() {
        let other = Tokens::new(&[8u8; 32], "catalog-sandbox").unwrap();
        let token = other.issue(&UserId("u1".into()), &ann(), OffsetDateTime::now_utc());
        assert_eq!(tokens().verify(&token), None);
    }

    #[test]
    fn a_token_of_another_stack_is_refused_even_with_the_same_secret() {
        let sandbox = tokens();
        let branch = Tokens::new(&[7u8; 32], "catalog-br-feat-x-0123456789").unwrap();
        let now = OffsetDateTime::now_utc();
        let from_branch = branch.issue(&UserId("u1".into()), &ann(), now);
        assert!(branch.verify(&from_branch).is_some());
        assert_eq!(sandbox.verify(&from_branch), None);
        assert_eq!(
            branch.verify(&sandbox.issue(&UserId("u1".into()), &ann(), now)),
            None
        );
        // A token without issuer and audience (as this app signed before them) is refused too.
        let bare = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "u1", "email": "ann@example.com", "iat": now.unix_timestamp(), "exp": now.unix_timestamp() + 60}),
            &EncodingKey::from_secret(&[7u8; 32]),
        )
        .unwrap();
        assert_eq!(sandbox.verify(&bare), None);
        assert!(matches!(
            Tokens::new(&[7u8; 32], " "),
            Err(AuthError::NoAudience)
        ));
    }

    #[test]
    fn alg_none_and_malformed_tokens_are_refused() {
        let t = tokens();
        let good = t.issue(&UserId("u1".into()), &ann(), OffsetDateTime::now_utc());
        let payload = good.split('.').nth(1).unwrap();
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(t.verify(&format!("{none_header}.{payload}.")), None);
        let hs512 = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS512","typ":"JWT"}"#);
        let sig = good.split('.').nth(2).unwrap();
        assert_eq!(t.verify(&format!("{hs512}.{payload}.{sig}")), None);
        for bad in [
            "",
            "abc",
            "a.b.c",
            "!!!.???.***",
            &format!("{{.{payload}.{sig}"),
        ] {
            assert_eq!(t.verify(bad), None, "{bad:?} accepted");
        }
    }

    #[test]
    fn hashes_are_the_phc_strings_argon2_itself_writes_and_reads() {
        let email = Email::parse("ann@example.com").unwrap();
        let ours = hash_password(&Password::parse("plover quartz ferry", &email).unwrap()).unwrap();
        // Argon2's own verifier accepts ours, and ours accepts Argon2's own.
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"plover quartz ferry", &parsed)
                .is_ok()
        );
        let theirs = Argon2::default()
            .hash_password(b"plover quartz ferry", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(verify_password("plover quartz ferry", Some(&theirs)));
        assert!(!verify_password("plover quartz ferrY", Some(&theirs)));
    }

    #[test]
    fn the_decoy_hash_has_the_parameters_real_hashes_get() {
        let email = Email::parse("ann@example.com").unwrap();
        let real = hash_password(&Password::parse("plover quartz ferry", &email).unwrap()).unwrap();
        let params = |h: &str| h.split('$').nth(3).unwrap().to_string();
        assert_eq!(params(DECOY_HASH), params(&real));
        assert!(PasswordHash::new(DECOY_HASH).is_ok());
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(matches!(
            Tokens::new(&[1u8; 31], "catalog-sandbox"),
            Err(AuthError::WeakSecret)
        ));
    }
}
