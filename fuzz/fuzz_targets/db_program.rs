//! Whole operation programs against the model: the input decodes into a program of puts,
//! deletes, range deletes and batches (synced or not), gets, scans both ways, snapshots,
//! flushes, compactions, reopens, crashes in any `CrashMode` and I/O faults armed at the n-th
//! next operation (once, or a dead disk). It runs on `SimFs` with a 4 KiB memtable and 16 keys,
//! and `tests/common/program.rs` checks every step and every crash against the model of
//! `tests/common/contract.rs`, the one the sweeps use. A violation panics with the program, which
//! a regression test in tests/ then writes out and runs with `program::run`.
#![no_main]

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use strata::fs::{CrashMode, OpKind, SimFs};

#[allow(dead_code)]
#[path = "../../tests/common/contract.rs"]
mod contract;
#[allow(dead_code)]
#[path = "../../tests/common/program.rs"]
mod program;

use program::{Action, Program, ScanRange, WriteOp};

/// A [`Program`] decoded from raw bytes, a byte or two per choice, so that the fuzzer's
/// mutations of the input are small changes of the program.
#[derive(Debug)]
struct Input(Program);

fn write_op(u: &mut Unstructured) -> Result<WriteOp> {
    Ok(match u.int_in_range(0..=9u8)? {
        0..=5 => WriteOp::Put {
            key: u.arbitrary()?,
            len: match u.arbitrary::<u8>()? {
                // Now and then a value over a file handle's 64 KiB buffer.
                255 => 70_000,
                n => u32::from(n) * 2,
            },
        },
        6..=8 => WriteOp::Delete(u.arbitrary()?),
        _ => WriteOp::DeleteRange {
            start: u.arbitrary()?,
            end: u.arbitrary()?,
        },
    })
}

fn action(u: &mut Unstructured) -> Result<Action> {
    Ok(match u.int_in_range(0..=99u8)? {
        0..=29 => Action::Write {
            ops: vec![write_op(u)?],
            sync: u.arbitrary()?,
        },
        30..=41 => {
            let n = u.int_in_range(1..=8u8)?;
            Action::Write {
                ops: (0..n).map(|_| write_op(u)).collect::<Result<_>>()?,
                sync: u.arbitrary()?,
            }
        }
        42..=51 => Action::Get(u.arbitrary()?),
        52..=61 => Action::Scan {
            range: if u.arbitrary()? {
                ScanRange::Prefix(u.arbitrary()?)
            } else {
                ScanRange::Range(u.arbitrary()?, u.arbitrary()?)
            },
            back: u.arbitrary()?,
            len: u.int_in_range(0..=24)?,
        },
        62..=64 => Action::TakeSnapshot,
        65..=68 => Action::ReadSnapshot(u.arbitrary()?),
        69..=75 => Action::Flush,
        76..=78 => Action::Compact,
        79..=83 => Action::Reopen,
        84..=91 => Action::Crash(CrashMode::ALL[u.choose_index(CrashMode::ALL.len())?]),
        _ => Action::Fault {
            after: u.arbitrary()?,
            kind: if u.arbitrary()? {
                Some(OpKind::ALL[u.choose_index(OpKind::ALL.len())?])
            } else {
                None
            },
            dead: u.arbitrary()?,
        },
    })
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let seed = u.arbitrary()?;
        let mut actions = Vec::new();
        while !u.is_empty() && actions.len() < program::MAX_ACTIONS {
            actions.push(action(u)?);
        }
        Ok(Input(Program { seed, actions }))
    }
}

/// The empty database every program starts from (forked per run).
fn base() -> &'static SimFs {
    static BASE: OnceLock<SimFs> = OnceLock::new();
    BASE.get_or_init(|| contract::created_db(0))
}

fuzz_target!(|input: Input| {
    if let Err(e) = program::run(base(), &input.0) {
        panic!("contract violated: {e}\nprogram: {:#?}", input.0);
    }
});
