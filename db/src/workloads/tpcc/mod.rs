//! TPC-C (5.11) as a workload of its own ([`TpccWorkload`]): the schema and population
//! ([`load`]), the five transactions ([`txn`], their SQL in `sql`) and the consistency
//! conditions ([`check`]). Warehouses are the key space: each worker's shard is its
//! home warehouses, and remote warehouses are drawn from the whole fleet's.

pub mod check;
pub mod load;
mod sql;
pub mod txn;

use super::builtin::check_scenario;
use super::{Attempt, CheckError, CheckFor, Executed, Keys, Workload};
use crate::session::Session;
use fleetload_common::generator::Streams;
use fleetload_common::rng::Rng;
use fleetload_common::scenario::{Operation, Scenario};
use fleetload_common::target::Driver;

/// TPC-C's five transactions as a workload: the statements for one dialect, the fleet's
/// warehouses (where remote transactions draw from) and the transaction of each mix
/// slot. A session's home warehouse for each transaction is drawn from its keys (the
/// worker's shard, and any taken over from a lost worker).
#[derive(Debug, Clone)]
pub struct TpccWorkload {
    statements: txn::Statements,
    home: txn::Home,
    ops: Vec<Operation>,
}

impl TpccWorkload {
    pub fn new(driver: Driver, seed: u64) -> Self {
        TpccWorkload {
            statements: txn::Statements::new(driver),
            home: txn::Home {
                w: 1,
                warehouses: 1,
                constants: fleetload_common::tpcc::Constants::run(seed),
            },
            ops: Vec::new(),
        }
    }

    /// The whole fleet's warehouses, where remote transactions draw from.
    #[must_use]
    pub fn with_key_space(mut self, warehouses: u64) -> Self {
        self.home.warehouses = warehouses.max(1);
        self
    }

    /// The transaction of each mix slot, in order.
    #[must_use]
    pub fn with_mix(self, ops: Vec<Operation>) -> Self {
        TpccWorkload { ops, ..self }
    }

    /// The pre-flight: every TPC-C table answers, and the warehouses reach `warehouses`.
    ///
    /// # Errors
    /// What is missing, and the `fleetload prepare` command that makes it.
    pub async fn check(
        &self,
        session: &mut Session,
        driver: Driver,
        ops: &[Operation],
        target: &str,
        warehouses: u64,
    ) -> Result<(), String> {
        let probes = ops.iter().map(|op| {
            (
                *op,
                load::PROBES
                    .iter()
                    .map(|p| (*p, Vec::new()))
                    .collect::<Vec<_>>(),
            )
        });
        check_scenario(session, Scenario::Tpcc, driver, probes, target, warehouses).await
    }

    /// Run transaction `op` once (with its own deadlock retries) from a home warehouse
    /// drawn from `keys`.
    ///
    /// # Errors
    /// Whatever the database returns; the caller classifies it.
    pub async fn run(
        &self,
        session: &mut Session,
        op: Operation,
        keys: &mut Keys,
        rng: &mut Rng,
    ) -> Result<Executed, sqlx::Error> {
        let shard = keys.pick(rng);
        // A home warehouse of this worker's (its shard, and any taken over).
        let home = txn::Home {
            w: rng.range(shard.first, shard.last),
            ..self.home
        };
        let done = txn::run(&self.statements, session, op, &home, rng)
            .await
            .map_err(|e| match e {
                txn::TxnError::Sql(e) => e,
                // Not the connection's fault: an error of the data, not a reconnect.
                data @ txn::TxnError::Data(_) => sqlx::Error::Decode(data.to_string().into()),
            })?;
        Ok(Executed {
            inserted: 0,
            // Order lines entered, payments, orders delivered; the read-only two
            // report what they found, which may rightly be nothing.
            rows: (!done.rolled_back
                && matches!(
                    op,
                    Operation::NewOrder | Operation::Payment | Operation::Delivery
                ))
            .then_some(done.rows),
            retries: done.retries,
            rolled_back: done.rolled_back,
            remote: done.remote,
        })
    }
}

/// A TPC-C session keeps nothing of its own: its keys and its random stream are the
/// session loop's.
impl Workload for TpccWorkload {
    type Session = ();

    fn session(&self, _streams: Streams) -> Self::Session {}

    async fn check(&self, db: &mut Session, plan: &CheckFor<'_>) -> Result<(), CheckError> {
        let driver = db.driver();
        self.check(db, driver, &self.ops, plan.target, plan.rows)
            .await
            .map_err(CheckError::Builtin)
    }

    async fn execute(
        &self,
        db: &mut Session,
        slot: usize,
        _state: &mut (),
        keys: &mut Keys,
        rng: &mut Rng,
    ) -> Attempt {
        Attempt::of_sql(self.run(db, self.ops[slot], keys, rng).await)
    }
}
