// Package chaos holds GameMetrics' chaos experiments.
//
// The local experiments are the tests of this package: the real local stack
// (shared/devstack), every function as its own HTTP server, the local
// eventing runtime running eventing/base, and a real toxiproxy, embedded
// as a library, between the functions and PostgreSQL and Redis. Each test
// states a steady-state hypothesis, injects one fault (latency, reset
// connections, an outage) while simulated game clients send, and checks the
// hypothesis exactly: the report API must equal the simulator's truth and
// every accepted event must be stored once.
//
// The production twins are Chaos Mesh manifests in chaos/mesh, validated
// offline by the separate module chaos/validate. chaos/README.md describes
// every experiment, how to run it and what it found.
package chaos
