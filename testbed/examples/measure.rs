#[path = "../tests/common/mod.rs"]
mod common;
use common::*;
use std::time::{Duration, Instant};
use twinpeak_testbed::Build;

fn pct(mut v: Vec<Duration>) -> String {
    v.sort();
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q) as usize];
    format!("p50 {:?} p99 {:?} max {:?}", p(0.5), p(0.99), v[v.len() - 1])
}

#[tokio::main]
async fn main() {
    for b in Build::ALL {
        let t = Instant::now();
        let tb = start(b).await;
        let seed = t.elapsed();
        let a = tb.addr;
        let partner = partner_offering(a, "pune", "haircut").await;
        let q = "/partners?city=pune&service=haircut";
        let mut idle = vec![];
        for _ in 0..200 { let s = Instant::now(); get(a, q).await; idle.push(s.elapsed()); }
        let mut idleb = vec![];
        for i in 0..40 { let s = Instant::now(); let r = post(a, "/bookings", &booking(partner, "haircut", &day(1 + i / 40), "x")).await; assert_eq!(r.status, 201); idleb.push(s.elapsed()); }
        // concurrent: 100 searches + 50 bookings at once
        let s0 = Instant::now();
        let mut hs = vec![];
        for i in 0..150 {
            hs.push(tokio::spawn(async move {
                let s = Instant::now();
                if i % 3 == 0 {
                    let r = post(a, "/bookings", &booking(partner, "haircut", &day(5 + (i as i64 / 3) / 48), "y")).await;
                    assert_eq!(r.status, 201);
                    (true, s.elapsed())
                } else { get(a, "/partners?city=pune&service=haircut").await; (false, s.elapsed()) }
            }));
        }
        let (mut cs, mut cb) = (vec![], vec![]);
        for h in hs { let (bk, d) = h.await.unwrap(); if bk { cb.push(d) } else { cs.push(d) } }
        let total = s0.elapsed();
        println!("{b}: seed+start {seed:?}\n  idle search {}\n  idle booking {}\n  150 at once (all done {total:?}): search {}\n    booking {}\n  {:?}", pct(idle), pct(idleb), pct(cs), pct(cb), tb.notifications());
        tb.shutdown().await;
    }
}
