//! [`run`]: the whole life of a worker process in one call.

use crate::error::Chain;
use crate::worker::Worker;
use std::fmt::Display;
use std::io::Write;

/// Exit code of [`run`] when the closure returned `Ok`.
pub const SUCCESS_EXIT_CODE: i32 = 0;
/// Exit code of [`run`] when the closure returned `Err`.
pub const FAILURE_EXIT_CODE: i32 = 1;
/// Exit code of [`run`] when the program was not started by distarch (a variable
/// is missing or invalid); the reason is printed on stderr.
pub const NOT_STARTED_BY_DISTARCH_EXIT_CODE: i32 = 2;

/// Runs a worker: builds it from the environment, sends `hello`, starts listening for the master,
/// calls `body`, sends `ended` and exits the process.
///
/// Exit codes: [`SUCCESS_EXIT_CODE`] (0) when `body` returns `Ok`;
/// [`FAILURE_EXIT_CODE`] (1) when it returns `Err`, after sending the error (with
/// its `{:#}` form, which shows the causes of an `anyhow::Error`) as an `error`
/// log frame; [`NOT_STARTED_BY_DISTARCH_EXIT_CODE`] (2) with a message on stderr
/// when the `DISTARCH_*` variables are missing or invalid. If the master goes away
/// and `body` does not return within the grace period, the SDK exits with
/// [`MASTER_GONE_EXIT_CODE`](crate::MASTER_GONE_EXIT_CODE) (3). A panic in `body`
/// is not caught: the process ends as panics do, without `ended`.
///
/// ```no_run
/// distarch_worker::run(|worker| {
///     worker.ready();
///     while worker.sleep(std::time::Duration::from_secs(1)) {
///         worker.info(format!("hello from {}", worker.id()));
///     }
///     Ok::<(), std::io::Error>(())
/// })
/// ```
pub fn run<E, F>(body: F) -> !
where
    F: FnOnce(&Worker) -> Result<(), E>,
    E: Display,
{
    let worker = match Worker::from_env() {
        Ok(worker) => worker,
        Err(err) => {
            let program = std::env::args().next().unwrap_or_else(|| "worker".into());
            eprintln!("{program}: {}", Chain(&err));
            std::process::exit(NOT_STARTED_BY_DISTARCH_EXIT_CODE);
        }
    };
    worker.hello();
    worker.listen();
    let code = match body(&worker) {
        Ok(()) => SUCCESS_EXIT_CODE,
        Err(err) => {
            worker.error(format!("{err:#}"));
            FAILURE_EXIT_CODE
        }
    };
    worker.ended();
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}
