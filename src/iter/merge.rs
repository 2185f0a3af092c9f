//! `MergingIterator`: the union of several sorted cursors, in one direction.
//!
//! A merging iterator is built for one direction: forward (seek / seek_to_first / next) or
//! backward (seek_for_prev / seek_to_last / prev). The user-facing iterator keeps one of each
//! for its two ends, so no cursor ever has to switch direction mid-merge.
//!
//! Children are few (memtables, level-0 tables, one cursor per deeper level), so the current
//! child is found by a linear scan, which beats a heap at these sizes.

use std::cmp::Ordering;

use bytes::Bytes;

use crate::error::Result;
use crate::iter::InternalIterator;
use crate::key::compare_internal;

pub struct MergingIterator {
    children: Vec<Box<dyn InternalIterator>>,
    current: Option<usize>,
    forward: bool,
}

impl MergingIterator {
    pub fn new(children: Vec<Box<dyn InternalIterator>>) -> Self {
        MergingIterator {
            children,
            current: None,
            forward: true,
        }
    }

    pub fn valid(&self) -> bool {
        self.current.is_some()
    }

    pub fn key(&self) -> &[u8] {
        match self.current {
            Some(i) => self.children[i].key(),
            None => &[],
        }
    }

    pub fn value(&self) -> Bytes {
        match self.current {
            Some(i) => self.children[i].value(),
            None => Bytes::new(),
        }
    }

    pub fn seek_to_first(&mut self) -> Result<()> {
        for c in &mut self.children {
            c.seek_to_first()?;
        }
        self.pick(true);
        Ok(())
    }

    pub fn seek_to_last(&mut self) -> Result<()> {
        for c in &mut self.children {
            c.seek_to_last()?;
        }
        self.pick(false);
        Ok(())
    }

    pub fn seek(&mut self, target: &[u8]) -> Result<()> {
        for c in &mut self.children {
            c.seek(target)?;
        }
        self.pick(true);
        Ok(())
    }

    pub fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        for c in &mut self.children {
            c.seek_for_prev(target)?;
        }
        self.pick(false);
        Ok(())
    }

    /// Advance in the direction of the last seek.
    pub fn step(&mut self) -> Result<()> {
        let Some(i) = self.current else { return Ok(()) };
        if self.forward {
            self.children[i].next()?;
        } else {
            self.children[i].prev()?;
        }
        self.pick(self.forward);
        Ok(())
    }

    fn pick(&mut self, forward: bool) {
        self.forward = forward;
        let want = if forward {
            Ordering::Less
        } else {
            Ordering::Greater
        };
        let mut best: Option<usize> = None;
        for (i, c) in self.children.iter().enumerate() {
            if !c.valid() {
                continue;
            }
            best = match best {
                Some(b) if compare_internal(c.key(), self.children[b].key()) != want => Some(b),
                _ => Some(i),
            };
        }
        self.current = best;
    }
}
