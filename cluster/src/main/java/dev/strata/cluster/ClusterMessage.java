package dev.strata.cluster;

/** Every message between cluster nodes: Pekko serialises them with {@link KryoSerializer}, each class registered in {@link Messages}. */
public interface ClusterMessage {}
