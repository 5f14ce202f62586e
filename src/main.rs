//! `scratchnet`: train, evaluate, predict, inspect. See `scratchnet --help`.

mod cli;

use clap::Parser;
use cli::{Cli, Command};

fn main() {
    // Not `Cli::parse()`: it panics when --help goes to a closed pipe.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            std::process::exit(e.exit_code());
        }
    };
    // An unknown instruction-set cap is refused before any work, naming the variable.
    if let Err(e) = scratchnet::ops::internals::isa::cap_from_env() {
        cli::out::errln!("error: {e}");
        std::process::exit(2);
    }
    let result = match cli.command {
        Command::Train(a) => cli::train::run(*a),
        Command::Evaluate(a) => cli::evaluate::run(a),
        Command::Predict(a) => cli::predict::run(a),
        Command::Inspect(a) => cli::inspect::run(a),
        Command::Devices(a) => cli::device::list(a),
        Command::Import(a) => cli::import::run(a),
        Command::Export(a) => cli::export::run(a),
        Command::Download(a) => cli::download::run(a),
    };
    if let Err(e) = result {
        if e.downcast_ref::<cli::train::Interrupted>().is_some() {
            cli::out::errln!("{e:#}");
            std::process::exit(130);
        }
        cli::out::errln!("error: {e:#}");
        std::process::exit(1);
    }
}
