package dev.strata.trainer.cli;

import dev.strata.cluster.ClusterNode;
import java.nio.file.Files;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** cluster.tls: remoting between the cluster's nodes over TLS with mutual authentication, as the coordinator and every worker take it. */
final class TlsOptions {
    @Option(names = "--tls-keystore", description = "cluster.tls: this node's key and certificate (PKCS12 or JKS); remoting runs over TLS when given.") Path keystore;
    @Option(names = "--tls-truststore", description = "cluster.tls: the certificates of the nodes it trusts (default: the keystore).") Path truststore;
    @Option(names = "--tls-password-file", description = "cluster.tls: a file holding the stores' password (default: the STRATA_TLS_PASSWORD variable).") Path passwordFile;

    /** The TLS settings, or null for plain TCP; one line naming the option where a store is missing. */
    ClusterNode.Tls tls() {
        if (keystore == null) {
            if (truststore != null || passwordFile != null) throw new IllegalArgumentException("--tls-truststore and --tls-password-file need --tls-keystore");
            return null;
        }
        Path trust = truststore == null ? keystore : truststore;
        if (!Files.isReadable(keystore)) throw new IllegalArgumentException("--tls-keystore " + keystore + " cannot be read");
        if (!Files.isReadable(trust)) throw new IllegalArgumentException("--tls-truststore " + trust + " cannot be read");
        return new ClusterNode.Tls(keystore, trust, ClusterClient.secret(passwordFile, "--tls-password-file", "STRATA_TLS_PASSWORD", "TLS store password"));
    }
}
