package dev.strata.parallel.comm;

import dev.strata.runtime.Tensor;

/**
 * Collectives over one process group, as this rank sees them. Every call returns at once with a {@link Work}; calls
 * on one communicator run in the order they were made (one communication stream), and a tensor handed to a call
 * belongs to it until its work is awaited. Every rank of the group must make the same calls in the same order, with
 * tensors of the same shape and dtype. Ranks are the group's (0 .. size-1), not global ones.
 */
public interface Communicator extends AutoCloseable {
    /** This rank's index in the group. */
    int rank();

    int size();

    /** The group's name in errors, e.g. "dp[pp=0,tp=1]". */
    String name();

    /** In place: every rank ends with the reduction of everyone's t. */
    Work allReduce(Tensor t, ReduceOp op);

    /** In place: root ends with the reduction of everyone's t; the other ranks' t is left undefined. */
    Work reduce(Tensor t, int root, ReduceOp op);

    /** input (size × n elements) reduced across ranks; rank r receives block r (n elements) in output. */
    Work reduceScatter(Tensor input, Tensor output, ReduceOp op);

    /** Every rank's input (n elements) concatenated in rank order into output (size × n) on every rank. */
    Work allGather(Tensor input, Tensor output);

    /** In place: every rank ends with root's t. */
    Work broadcast(Tensor t, int root);

    Work send(Tensor t, int peer);

    Work recv(Tensor t, int peer);

    /** Completes once every rank has reached it. */
    Work barrier();

    @Override void close();
}
