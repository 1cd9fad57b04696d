// Package jobs holds the garbage collection of blobs nothing refers to any
// more (expired job outputs and logs, inputs of deleted jobs, archives of
// removed images). The dispatcher's decision is in package dispatch, its
// loop in package leader, webhook delivery in package webhook.
package jobs
