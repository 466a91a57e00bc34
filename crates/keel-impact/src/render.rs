//! The report for people: a summary line, the hosts that change service in sentences,
//! the movement matrix as a table with examples, the services before and after, the
//! failures and the sticky sessions. Long lists are cut; the JSON form has everything.

use std::fmt::Write as _;

use crate::gate::percent;
use crate::report::{Amount, ImpactReport, ServiceShare};

/// Most movement rows shown (the rest are counted).
const MAX_MOVEMENT_ROWS: usize = 40;
/// Most hosts listed with their flows.
const MAX_HOST_ROWS: usize = 20;
/// Most services listed with their before and after shares.
const MAX_SERVICE_ROWS: usize = 20;
/// Most pool pairs listed under sticky sessions.
const MAX_STICKY_ROWS: usize = 10;
/// Most flows shown per host.
const MAX_FLOWS_PER_HOST: usize = 5;

impl ImpactReport {
    /// The report as text, readable at a glance.
    pub fn render_human(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_human(&mut out);
        out
    }

    fn write_human(&self, out: &mut String) -> std::fmt::Result {
        let total = self.total;
        writeln!(
            out,
            "Blast radius on {total} sampled request{}",
            if total == 1 { "" } else { "s" }
        )?;
        if total == 0 {
            writeln!(
                out,
                "  no traffic to replay: nothing can be said about this change"
            )?;
            return Ok(());
        }
        writeln!(
            out,
            "  {} change destination, {} change service, {} start failing",
            amount(self.moved),
            amount(self.changes_service),
            amount(self.failing.starting.amount)
        )?;
        if self.is_unchanged() && self.refusals.is_empty() {
            writeln!(
                out,
                "  no sampled request changes route, pool, service or backend"
            )?;
        }
        for refusals in &self.refusals {
            writeln!(out, "  {}", refusals.describe())?;
        }

        let shifted: Vec<_> = self
            .hosts
            .iter()
            .filter(|h| h.changes_service.requests > 0.0)
            .collect();
        if !shifted.is_empty() {
            writeln!(out, "\nHosts whose traffic changes service")?;
            for host in shifted.iter().take(MAX_HOST_ROWS) {
                writeln!(
                    out,
                    "  {}: {} of {} request{}",
                    host.host,
                    percent(host.changes_service.share),
                    host.requests,
                    if host.requests == 1 { "" } else { "s" }
                )?;
                for flow in host.flows.iter().take(MAX_FLOWS_PER_HOST) {
                    writeln!(
                        out,
                        "    {} of requests to {} would move from {} to {}",
                        percent(flow.amount.share),
                        host.host,
                        flow.from,
                        flow.to
                    )?;
                }
                if host.flows.len() > MAX_FLOWS_PER_HOST {
                    writeln!(
                        out,
                        "    … {} smaller flows",
                        host.flows.len() - MAX_FLOWS_PER_HOST
                    )?;
                }
            }
            if shifted.len() > MAX_HOST_ROWS {
                writeln!(out, "  … {} more hosts", shifted.len() - MAX_HOST_ROWS)?;
            }
        }
        let unchanged_hosts = self.hosts.len() - shifted.len();
        if unchanged_hosts > 0 {
            writeln!(
                out,
                "  {unchanged_hosts} host{} keep{} every request on its service",
                if unchanged_hosts == 1 { "" } else { "s" },
                if unchanged_hosts == 1 { "s" } else { "" }
            )?;
        }

        if !self.movements.is_empty() {
            self.write_matrix(out)?;
        }

        let mut changed: Vec<&ServiceShare> =
            self.services.iter().filter(|s| s.old != s.new).collect();
        if !changed.is_empty() {
            writeln!(
                out,
                "\nServices: share of all sampled traffic, before → after"
            )?;
            let delta = |s: &ServiceShare| (s.new.requests - s.old.requests).abs();
            changed.sort_by(|a, b| delta(b).total_cmp(&delta(a)));
            let hidden = changed.len().saturating_sub(MAX_SERVICE_ROWS);
            changed.truncate(MAX_SERVICE_ROWS);
            let width = changed.iter().map(|s| s.service.len()).max().unwrap_or(0);
            for service in changed {
                writeln!(
                    out,
                    "  {:width$}  {:>6} → {:>6}",
                    service.service,
                    percent(service.old.share),
                    percent(service.new.share)
                )?;
            }
            if hidden > 0 {
                writeln!(out, "  … {hidden} services with smaller changes")?;
            }
        }

        let failing = &self.failing;
        if failing.starting.amount.requests > 0.0 {
            writeln!(
                out,
                "\nRequests that start failing: {}; {} find no route, {} reach an empty pool",
                amount(failing.starting.amount),
                number(failing.starting.no_route),
                number(failing.starting.empty_pool)
            )?;
            for example in &failing.examples {
                writeln!(out, "  e.g. {example}")?;
            }
        }
        if failing.recovering.amount.requests > 0.0 {
            writeln!(
                out,
                "Requests that stop failing: {}",
                amount(failing.recovering.amount)
            )?;
        }
        if failing.still.amount.requests > 0.0 {
            writeln!(
                out,
                "Requests failing before and after: {}",
                amount(failing.still.amount)
            )?;
        }

        if let Some(sticky) = &self.sticky {
            writeln!(out, "\nSticky sessions (consistent-hash pools)")?;
            if sticky.requests > 0.0 {
                writeln!(
                    out,
                    "  {} of {} keyed requests ({}) change backend",
                    number(sticky.changed.requests),
                    number(sticky.requests),
                    percent(sticky.changed.share)
                )?;
            }
            let moving: Vec<_> = sticky
                .pools
                .iter()
                .filter(|p| p.changed.requests > 0.0)
                .collect();
            for pool in moving.iter().take(MAX_STICKY_ROWS) {
                let pools = if pool.from_pool == pool.to_pool {
                    format!("pool {}", pool.from_pool)
                } else {
                    format!("pool {} → {}", pool.from_pool, pool.to_pool)
                };
                writeln!(
                    out,
                    "  {pools}: {} of {} ({})",
                    number(pool.changed.requests),
                    number(pool.requests),
                    percent(pool.changed.share)
                )?;
            }
            if moving.len() > MAX_STICKY_ROWS {
                writeln!(out, "  … {} more pools", moving.len() - MAX_STICKY_ROWS)?;
            }
            if sticky.no_longer_sticky > 0.0 {
                writeln!(
                    out,
                    "  {} keyed requests move to a pool that does not hash: they lose their backend",
                    number(sticky.no_longer_sticky)
                )?;
            }
            if sticky.without_key > 0.0 {
                writeln!(
                    out,
                    "  {} requests on hashing pools carry no sticky key (not counted)",
                    number(sticky.without_key)
                )?;
            }
        }
        Ok(())
    }

    fn write_matrix(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "\nMovement matrix (route / pool / service, old → new)")?;
        let rows: Vec<[String; 5]> = self
            .movements
            .iter()
            .take(MAX_MOVEMENT_ROWS)
            .map(|m| {
                [
                    number(m.amount.requests),
                    percent(m.amount.share),
                    m.change.to_string(),
                    m.from.to_string(),
                    m.to.to_string(),
                ]
            })
            .collect();
        let mut widths = [
            "requests".len(),
            "share".len(),
            "change".len(),
            "from".len(),
            0,
        ];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let [w0, w1, w2, w3, _] = widths;
        writeln!(
            out,
            "  {:>w0$}  {:>w1$}  {:w2$}  {:w3$}    to",
            "requests", "share", "change", "from"
        )?;
        for (row, movement) in rows.iter().zip(&self.movements) {
            writeln!(
                out,
                "  {:>w0$}  {:>w1$}  {:w2$}  {:w3$}  → {}",
                row[0], row[1], row[2], row[3], row[4]
            )?;
            for example in &movement.examples {
                writeln!(out, "  {:pad$}e.g. {example}", "", pad = w0 + w1 + w2 + 6)?;
            }
        }
        if self.movements.len() > MAX_MOVEMENT_ROWS {
            writeln!(
                out,
                "  … {} smaller movements (see --format json)",
                self.movements.len() - MAX_MOVEMENT_ROWS
            )?;
        }
        Ok(())
    }
}

/// `37 requests (37.0%)`.
fn amount(amount: Amount) -> String {
    format!(
        "{} request{} ({})",
        number(amount.requests),
        if amount.requests == 1.0 { "" } else { "s" },
        percent(amount.share)
    )
}

/// Whole counts without decimals, expected fractions with one.
fn number(value: f64) -> String {
    if (value - value.round()).abs() < 1e-6 {
        format!("{}", value.round())
    } else {
        format!("{value:.1}")
    }
}
