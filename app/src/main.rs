use anyhow::Context;
use app::entry::{self, Store};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "app",
    about = "The product catalog: a Lambda behind API Gateway, or a server on localhost"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum StoreKind {
    Memory,
    Dynamodb,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the catalog on localhost.
    Serve {
        #[arg(long, default_value_t = 3000)]
        port: u16,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Where products and users live.
        #[arg(long, value_enum, default_value_t = StoreKind::Memory)]
        store: StoreKind,
        /// The DynamoDB table (with --store dynamodb).
        #[arg(long, required_if_eq("store", "dynamodb"), env = entry::TABLE_VAR)]
        table: Option<String>,
    },
    /// Run the import handler on an SNS event (as Lambda receives it) from a file, against a
    /// DynamoDB table: what the import function does, locally. Prints what it did as JSON.
    Import {
        /// The SNS event JSON; "-" reads stdin.
        #[arg(long)]
        event: std::path::PathBuf,
        #[arg(long, env = entry::TABLE_VAR)]
        table: String,
        /// The SQS queue for messages that cannot be imported; without it they are only
        /// reported, and the exit status is 1.
        #[arg(long, env = entry::DEAD_LETTER_VAR)]
        dead_letter_queue: Option<String>,
    },
    /// Create the DynamoDB table for local development (AWS_ENDPOINT_URL for the emulator).
    CreateTable {
        #[arg(long)]
        table: String,
    },
    /// The catalog's users, at their table.
    Users {
        #[command(subcommand)]
        action: UsersAction,
    },
}

#[derive(Subcommand)]
enum UsersAction {
    /// Give a signed-up user a role: reader, editor (creates and updates products) or admin
    /// (also deletes them and grants roles).
    Grant {
        email: String,
        role: String,
        #[arg(long, env = entry::TABLE_VAR)]
        table: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Lambda starts the binary with no arguments and this variable set.
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return entry::lambda().await;
    }
    match Cli::parse().command {
        Command::Serve {
            port,
            host,
            store,
            table,
        } => {
            let store = match (store, table) {
                (StoreKind::Dynamodb, Some(table)) => {
                    let store = entry::dynamo_store(&entry::aws_config().await, &table);
                    let exists = store.exists().await.with_context(|| {
                        format!(
                            "cannot reach DynamoDB to find table {table}: check AWS_ENDPOINT_URL (the emulator's address), the region and the credentials"
                        )
                    })?;
                    if !exists {
                        anyhow::bail!(
                            "DynamoDB table {table} does not exist: create it with `app create-table --table {table}` (AWS_ENDPOINT_URL for the emulator), or name another with --table"
                        );
                    }
                    Store::Dynamo(store)
                }
                _ => Store::Memory,
            };
            entry::serve(&host, port, store).await
        }
        Command::Import {
            event,
            table,
            dead_letter_queue,
        } => {
            let report = entry::import_file(&event, &table, dead_letter_queue.as_deref()).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if dead_letter_queue.is_none() && !report.dead_lettered.is_empty() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Users {
            action: UsersAction::Grant { email, role, table },
        } => {
            let email = app::domain::Email::parse(&email)?;
            let role = app::domain::Role::parse(&role)?;
            entry::catalog_over(
                Store::Dynamo(entry::dynamo_store(&entry::aws_config().await, &table)),
                // Granting issues no token.
                app::auth::Tokens::ephemeral(app::entry::LOCAL_AUDIENCE)?,
            )
            .set_role(&email, role)
            .await?;
            println!("{} is now {role}", email.as_str());
            Ok(())
        }
        Command::CreateTable { table } => {
            let created = entry::dynamo_store(&entry::aws_config().await, &table)
                .create_table()
                .await?;
            println!(
                "table {table} {}",
                if created { "created" } else { "already exists" }
            );
            Ok(())
        }
    }
}
