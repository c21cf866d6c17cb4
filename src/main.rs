use clap::Parser;

use anomaly::cli::{Cli, run};
use anomaly::error::{EXIT_BAD_INPUT, EXIT_OK, exit_code, one_line};

fn main() {
    // Rust ignores SIGPIPE, which turns `anomaly info | head` into a panic on the next print;
    // a command-line tool should simply stop, as the shell expects.
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to its default before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    anomaly::keep_freed_memory();
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
