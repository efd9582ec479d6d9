package dev.strata.trainer.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/** The REST API of a cluster's coordinator, as the submit/jobs/status/logs/cancel commands call it, with the cluster's token. */
final class ClusterClient {
    static final ObjectMapper JSON = new ObjectMapper();
    private final String base, token;
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();

    ClusterClient(String cluster, String token) {
        this.base = cluster.replaceAll("/+$", "");
        this.token = token;
    }

    /** The cluster's token: from the file, else STRATA_TOKEN; one line saying how to give it when neither has one. */
    static String token(Path file) { return secret(file, "--token-file", "STRATA_TOKEN", "cluster token"); }

    /** A secret from the file an option names, else from an environment variable; one line where there is none. */
    static String secret(Path file, String option, String variable, String what) {
        try {
            if (file != null) {
                String t = Files.readString(file).strip();
                if (t.isEmpty()) throw new IllegalArgumentException(option + " " + file + " is empty; put the " + what + " in it");
                return t;
            }
        } catch (IOException e) {
            throw new IllegalArgumentException(option + " " + file + " cannot be read: " + e.getMessage());
        }
        String env = System.getenv(variable);
        if (env == null || env.isBlank()) throw new IllegalArgumentException("no " + what + ": pass " + option + " FILE or set " + variable);
        return env.strip();
    }

    JsonNode get(String path) { return send(HttpRequest.newBuilder(URI.create(base + path)).GET()); }

    JsonNode post(String path, Object body) {
        try {
            return send(HttpRequest.newBuilder(URI.create(base + path)).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(body))));
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The answer's JSON; an error status is one line with the coordinator's reason. */
    private JsonNode send(HttpRequest.Builder request) {
        HttpResponse<String> r;
        try {
            r = http.send(request.header("Authorization", "Bearer " + token).timeout(Duration.ofSeconds(30)).build(), HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot reach the cluster at " + base + ": " + e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted");
        }
        JsonNode body;
        try {
            body = JSON.readTree(r.body());
        } catch (IOException e) {
            throw new IllegalArgumentException(base + " answered " + r.statusCode() + " with no JSON: is it a Strata coordinator's address?");
        }
        if (r.statusCode() >= 400) throw new IllegalArgumentException(body.path("error").asText(base + " answered " + r.statusCode()));
        return body;
    }
}
