// Package simtest is what the function tests share to drive a game through
// GameMetrics and know the answer: a Generator of CloudEvents (random play
// with every edge case, or scripted sessions), Feed, which delivers them
// concurrently through any function's Handle, and Recount, the independent
// ground truth of shared/simulation over those events. It imports no
// function: a test passes its function's Handle as a value.
package simtest
