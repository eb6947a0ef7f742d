//! Integration tests: the real `warden` binary on loopback against a fake
//! upstream. One binary, modules by behaviour.

mod support;

mod audit_durability;
mod audit_fixture;
mod audit_log;
mod audit_report;
mod audit_review;
mod audit_verify;
mod cli;
mod config;
mod dns_blocking;
mod export;
mod faults;
mod malformed;
mod metrics;
mod netns_gateway;
mod netns_support;
mod phases;
mod privilege;
mod reload;
