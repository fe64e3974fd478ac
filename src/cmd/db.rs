//! `fwlog db init URL`: create or upgrade a database's schema, then say what was done.

use crate::exit;
use crate::sink::sql::init::{init as init_schema, InitConfig};

pub fn init(cfg: &InitConfig) -> i32 {
    match init_schema(cfg) {
        Ok(done) => {
            println!("fwlog: {done}");
            exit::OK
        }
        Err(e) => {
            eprintln!("fwlog: {e}");
            exit::OUTPUT
        }
    }
}
