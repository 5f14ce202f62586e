//! `scratchnet`: train, evaluate, predict, inspect. See `scratchnet --help`.

mod cli;

use clap::Parser;
use cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => cli::train::run(*a),
        Command::Evaluate(a) => cli::evaluate::run(a),
        Command::Predict(a) => cli::predict::run(a),
        Command::Inspect(a) => cli::inspect::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        let code = e.downcast_ref::<cli::train::Interrupted>().map_or(1, |_| 130);
        std::process::exit(code);
    }
}
