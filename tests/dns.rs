//! Mail-exchanger and address lookup (`delivery::dns`) against a real dnsmasq on
//! loopback.

mod common;

use common::dnsmasq;

use std::collections::HashSet;
use std::future::Future;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bridgehead::delivery::dns::{DnsError, MailHost, MailResolver};
use dnsmasq::Dnsmasq;

/// The test zone: every test starts its own dnsmasq with it.
const ZONE: &[&str] = &[
    // MX preference order (listed out of order).
    "--mx-host=pref.test,mx20.pref.test,20",
    "--mx-host=pref.test,mx10.pref.test,10",
    "--mx-host=pref.test,mx30.pref.test,30",
    "--host-record=mx10.pref.test,127.0.0.10",
    // Three MX of equal preference and a backup.
    "--mx-host=equal.test,a.equal.test,10",
    "--mx-host=equal.test,b.equal.test,10",
    "--mx-host=equal.test,c.equal.test,10",
    "--mx-host=equal.test,backup.equal.test,20",
    // No MX: implicit MX to the domain's own A and AAAA.
    "--host-record=plain.test,127.0.0.3,::3",
    // CNAME chain to an address.
    "--cname=alias.test,alias2.test",
    "--cname=alias2.test,target.test",
    "--host-record=target.test,127.0.0.4",
    // Null MX (RFC 7505): preference 0, root name.
    "--dns-rr=nullmx.test,15,000000",
    // A "." target among real MX also means null MX.
    "--mx-host=mixed.test,mx.mixed.test,10",
    "--dns-rr=mixed.test,15,000000",
    // Forwarded to a dead port: no answer at all.
    "--server=/slow.test/127.0.0.1#9",
];

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

fn resolver(dns: &Dnsmasq) -> MailResolver {
    MailResolver::new(&[dns.addr]).expect("resolver")
}

fn names(hosts: &[MailHost]) -> Vec<&str> {
    hosts.iter().map(|h| h.name.as_str()).collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("IP address")
}

#[test]
fn mx_by_preference() {
    let dns = Dnsmasq::start(ZONE);
    let r = resolver(&dns);
    block_on(async {
        let hosts = r.mail_hosts("pref.test").await.unwrap();
        assert_eq!(
            names(&hosts),
            ["mx10.pref.test", "mx20.pref.test", "mx30.pref.test"]
        );
        assert_eq!(
            hosts.iter().map(|h| h.preference).collect::<Vec<_>>(),
            [10, 20, 30]
        );
        assert!(hosts.iter().all(|h| !h.implicit && h.literal.is_none()));
        // Case and a trailing dot do not matter; names come back lower-case.
        assert_eq!(
            r.mail_hosts("PREF.Test.").await.unwrap()[0].name,
            "mx10.pref.test"
        );
        assert_eq!(
            r.addresses("MX10.pref.test.").await.unwrap(),
            [ip("127.0.0.10")]
        );
    });
}

#[test]
fn equal_preference_in_random_order() {
    let dns = Dnsmasq::start(ZONE);
    let r = resolver(&dns);
    block_on(async {
        let mut firsts = HashSet::new();
        let mut orders = HashSet::new();
        for _ in 0..60 {
            let hosts = r.mail_hosts("equal.test").await.unwrap();
            assert_eq!(hosts.len(), 4);
            assert_eq!(hosts[3].name, "backup.equal.test");
            assert_eq!(hosts[3].preference, 20);
            let top: HashSet<&str> = names(&hosts[..3]).into_iter().collect();
            assert_eq!(
                top,
                HashSet::from(["a.equal.test", "b.equal.test", "c.equal.test"])
            );
            firsts.insert(hosts[0].name.clone());
            orders.insert(names(&hosts).join(","));
        }
        assert_eq!(
            firsts.len(),
            3,
            "each equal MX comes first sometimes: {firsts:?}"
        );
        assert!(orders.len() >= 4, "orders seen: {orders:?}");
    });
}

#[test]
fn implicit_mx_to_a_and_aaaa() {
    let dns = Dnsmasq::start(ZONE);
    let r = resolver(&dns);
    block_on(async {
        assert_eq!(
            r.mail_hosts("plain.test").await.unwrap(),
            [MailHost {
                name: "plain.test".into(),
                preference: 0,
                implicit: true,
                literal: None,
            }]
        );
        assert_eq!(
            r.addresses("plain.test").await.unwrap(),
            [ip("127.0.0.3"), ip("::3")]
        );
    });
}

#[test]
fn cname_chain_to_address() {
    let dns = Dnsmasq::start(ZONE);
    let r = resolver(&dns);
    block_on(async {
        assert_eq!(r.addresses("alias.test").await.unwrap(), [ip("127.0.0.4")]);
        // The chain's target has no MX: implicit MX on the name asked for.
        let hosts = r.mail_hosts("alias.test").await.unwrap();
        assert_eq!(names(&hosts), ["alias.test"]);
        assert!(hosts[0].implicit);
    });
}

#[test]
fn null_mx() {
    let dns = Dnsmasq::start(ZONE);
    let r = resolver(&dns);
    block_on(async {
        let e = r.mail_hosts("nullmx.test").await.unwrap_err();
        assert_eq!(e, DnsError::NullMx("nullmx.test".into()));
        assert!(e.is_permanent());
        assert_eq!(e.status(), "5.1.10");
        assert_eq!(
            r.mail_hosts("mixed.test").await.unwrap_err(),
            DnsError::NullMx("mixed.test".into())
        );
    });
}

#[test]
fn nxdomain() {
    let dns = Dnsmasq::start(ZONE);
    let r = resolver(&dns);
    block_on(async {
        let e = r.mail_hosts("nosuch.test").await.unwrap_err();
        assert_eq!(e, DnsError::NoSuchDomain("nosuch.test".into()));
        assert!(e.is_permanent());
        assert_eq!(e.status(), "5.1.2");
        // An MX host without addresses: not permanent, the host may come back.
        let e = r.addresses("mx20.pref.test").await.unwrap_err();
        assert_eq!(e, DnsError::NoAddress("mx20.pref.test".into()));
        assert!(!e.is_permanent());
        assert_eq!(e.status(), "4.4.3");
        // A name that exists with an MX but no address.
        assert_eq!(
            r.addresses("pref.test").await.unwrap_err(),
            DnsError::NoAddress("pref.test".into())
        );
    });
}

#[test]
fn refused_is_transient() {
    let dns = Dnsmasq::start(ZONE);
    let r = resolver(&dns);
    block_on(async {
        // Outside test.: dnsmasq has no upstream and answers REFUSED.
        let e = r.mail_hosts("example.org").await.unwrap_err();
        assert!(matches!(e, DnsError::Transient(_)), "{e:?}");
        assert!(!e.is_permanent());
        assert_eq!(e.status(), "4.4.3");
        let e = r.addresses("mail.example.org").await.unwrap_err();
        assert!(matches!(e, DnsError::Transient(_)), "{e:?}");
    });
}

#[test]
fn timeout_is_transient() {
    let dns = Dnsmasq::start(ZONE);
    let r = MailResolver::with_timeout(&[dns.addr], Duration::from_millis(200), 1).unwrap();
    block_on(async {
        let start = Instant::now();
        let e = r.mail_hosts("x.slow.test").await.unwrap_err();
        assert!(matches!(e, DnsError::Transient(_)), "{e:?}");
        let e = r.addresses("x.slow.test").await.unwrap_err();
        assert!(matches!(e, DnsError::Transient(_)), "{e:?}");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    });
}

#[test]
fn address_literals_need_no_dns() {
    // No name server listens on this address: a DNS query would fail.
    let r = MailResolver::with_timeout(
        &["127.0.0.1:9".parse().unwrap()],
        Duration::from_millis(200),
        1,
    )
    .unwrap();
    block_on(async {
        assert_eq!(
            r.mail_hosts("[127.0.0.1]").await.unwrap(),
            [MailHost {
                name: "[127.0.0.1]".into(),
                preference: 0,
                implicit: false,
                literal: Some(ip("127.0.0.1")),
            }]
        );
        let hosts = r.mail_hosts("[IPv6:::1]").await.unwrap();
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].literal, Some(ip("::1")));
        assert!(
            r.mail_hosts("[not-an-address]")
                .await
                .unwrap_err()
                .is_permanent()
        );

        assert_eq!(r.addresses("127.0.0.5").await.unwrap(), [ip("127.0.0.5")]);
        assert_eq!(r.addresses("::1").await.unwrap(), [ip("::1")]);
        assert_eq!(r.addresses("[127.0.0.6]").await.unwrap(), [ip("127.0.0.6")]);
    });
}

#[test]
fn system_resolver_config() {
    // Only built, never queried (no traffic leaves loopback in tests).
    let r = MailResolver::new(&[]);
    if std::path::Path::new("/etc/resolv.conf").exists() {
        assert!(r.is_ok(), "{:?}", r.err());
    }
}
