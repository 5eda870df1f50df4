//! `api-token` commands: make, list and revoke API tokens for `/api/v1` (the
//! first token has to come from here, before anyone can use the API).

use anyhow::Result;
use clap::Subcommand;

use super::output::{Table, json};
use crate::admin::{audit, tokens};
use crate::store::Store;

/// The actor recorded in the audit log for changes made on the command line.
const CLI_ACTOR: &str = "cli";

#[derive(Debug, Subcommand)]
pub enum ApiTokenCmd {
    /// Make a token; it is printed once and cannot be shown again.
    New {
        /// 1-64 letters, digits, dots, underscores or hyphens.
        name: String,
    },
    /// List tokens (names and use, never the tokens).
    List,
    /// Revoke a token at once.
    Remove { name: String },
}

pub async fn run(store: &Store, cmd: ApiTokenCmd, as_json: bool) -> Result<String> {
    match cmd {
        ApiTokenCmd::New { name } => {
            let t = tokens::create(store, &name, CLI_ACTOR).await?;
            audit::record(store.pool(), CLI_ACTOR, "api-token.new", &t.info.name, None).await?;
            if as_json {
                return json(&t);
            }
            Ok(format!(
                "{}\n# API token {} created; it is shown only this once. Use it as:\n#   Authorization: Bearer <token>\n",
                t.token, t.info.name
            ))
        }
        ApiTokenCmd::List => {
            let list = tokens::list(store).await?;
            if as_json {
                return json(&list);
            }
            let mut t = Table::new(&["NAME", "CREATED BY", "CREATED", "LAST USED"]);
            for tok in list {
                t.row(vec![
                    tok.name,
                    tok.created_by,
                    tok.created_at,
                    tok.last_used_at.unwrap_or_else(|| "never".into()),
                ]);
            }
            Ok(t.render())
        }
        ApiTokenCmd::Remove { name } => {
            let t = tokens::remove(store, &name).await?;
            audit::record(store.pool(), CLI_ACTOR, "api-token.remove", &t.name, None).await?;
            if as_json {
                return json(&t);
            }
            Ok(format!("API token {} removed\n", t.name))
        }
    }
}
