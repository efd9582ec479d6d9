package dev.strata.trainer.cli;

import java.nio.file.Path;
import picocli.CommandLine.Option;

/** The cluster's token, as every cluster command takes it: --token-file, else STRATA_TOKEN. */
final class TokenOption {
    @Option(names = "--token-file", description = "A file holding the cluster's token (default: the STRATA_TOKEN variable).") Path tokenFile;

    String token() { return ClusterClient.token(tokenFile); }
}
