//! `convene user add|del|passwd`: account management, like `prosodyctl register`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use clap::Subcommand;
use convene_xmpp::accounts::Accounts;

use crate::config::Config;

#[derive(Subcommand, Debug)]
pub enum UserAction {
    /// Create an account; the password is read from standard input.
    Add {
        /// `name` or `name@domain` (the configured domain).
        user: String,
    },
    /// Delete an account.
    Del { user: String },
    /// Change an account's password, read from standard input.
    Passwd { user: String },
}

pub fn run(config: &Config, action: UserAction) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let accounts = Accounts::open(&config.data_dir)?;
    match action {
        UserAction::Add { user } => {
            let name = local_name(config, &user)?;
            accounts.set_password(&name, &read_password()?, false)?;
            println!("Created {name}@{}", config.domain);
        }
        UserAction::Passwd { user } => {
            let name = local_name(config, &user)?;
            accounts.set_password(&name, &read_password()?, true)?;
            println!("Changed the password of {name}@{}", config.domain);
        }
        UserAction::Del { user } => {
            let name = local_name(config, &user)?;
            accounts.delete(&name)?;
            println!("Deleted {name}@{}", config.domain);
        }
    }
    Ok(())
}

fn local_name(config: &Config, user: &str) -> anyhow::Result<String> {
    if let Some((_, domain)) = user.split_once('@')
        && !domain.eq_ignore_ascii_case(&config.domain)
    {
        bail!("{user} is not on this server's domain {}", config.domain);
    }
    Ok(convene_xmpp::accounts::normalize(user)?)
}

/// One line from standard input; on a terminal, prompted twice to catch typos.
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let read = |prompt: &str| -> anyhow::Result<String> {
        if interactive {
            print!("{prompt}");
            std::io::stdout().flush()?;
        }
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    };
    let password = read("Password: ")?;
    if password.is_empty() {
        bail!("empty password");
    }
    if interactive && read("Again: ")? != password {
        bail!("the passwords differ");
    }
    Ok(password)
}
