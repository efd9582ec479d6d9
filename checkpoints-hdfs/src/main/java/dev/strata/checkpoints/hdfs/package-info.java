/**
 * Checkpoints on HDFS: a {@link dev.strata.checkpoints.Storage} through Hadoop's FileSystem API, loaded only when a
 * checkpoint path is an hdfs:// URI, so nodes that never use HDFS never load Hadoop.
 */
package dev.strata.checkpoints.hdfs;
