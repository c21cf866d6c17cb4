use clap::Parser;

use anomaly::cli::{Cli, run};
use anomaly::error::{EXIT_BAD_INPUT, EXIT_OK, exit_code, one_line};

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                EXIT_BAD_INPUT
            } else {
                EXIT_OK
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    if let Err(err) = run(cli) {
        eprintln!("error: {}", one_line(&err));
        std::process::exit(exit_code(&err));
    }
}
