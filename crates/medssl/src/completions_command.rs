//! `medssl completions SHELL`: a completion script generated from the same argument
//! definitions the program parses, so it never lags behind a new flag.

use anyhow::Result;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

/// Arguments of `medssl completions`.
#[derive(Debug, Args)]
#[command(after_help = "Install, for example:\n  \
    bash: medssl completions bash > ~/.local/share/bash-completion/completions/medssl\n  \
    zsh:  medssl completions zsh > ~/.zfunc/_medssl  (with fpath+=~/.zfunc before compinit)\n  \
    fish: medssl completions fish > ~/.config/fish/completions/medssl.fish")]
pub struct CompletionsArgs {
    /// The shell to complete for.
    pub shell: Shell,
}

/// Writes the completion script for `C` (the program's argument parser) to stdout.
pub fn completions<C: CommandFactory>(args: &CompletionsArgs) -> Result<()> {
    let mut command = C::command();
    let name = command.get_name().to_string();
    clap_complete::generate(args.shell, &mut command, name, &mut std::io::stdout());
    Ok(())
}
