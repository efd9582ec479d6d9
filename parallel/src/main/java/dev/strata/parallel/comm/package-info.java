/**
 * Collectives over a process group: the {@link dev.strata.parallel.comm.Communicator} contract, asynchronous with a
 * handle to wait on, and its implementations (ranks as threads of one JVM; NCCL between GPUs).
 */
package dev.strata.parallel.comm;
