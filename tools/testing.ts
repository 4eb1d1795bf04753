/**
 * @file What tests use from the workspace tools and production code never does: a real
 * one-node Slurm cluster in a temporary directory.
 */
export { localClusterUnavailable, localSlurmConf, startLocalCluster, SLURM_PROGRAMS, type LocalCluster } from './slurm/local-cluster.ts';
