package dev.strata.cluster;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.strata.cluster.Protocol.*;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletionStage;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.http.javadsl.Http;
import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.model.StatusCodes;
import org.apache.pekko.http.javadsl.server.AllDirectives;
import org.apache.pekko.http.javadsl.server.Route;
import org.apache.pekko.http.javadsl.unmarshalling.Unmarshaller;
import static org.apache.pekko.http.javadsl.server.PathMatchers.segment;

/**
 * The coordinator's REST API, JSON both ways, every call with the cluster's token ({@code Authorization: Bearer}):
 * POST /api/jobs, GET /api/jobs, GET /api/jobs/ID, GET /api/jobs/ID/curve, GET /api/jobs/ID/events (server-sent
 * events: the job once a second until it ends), GET /api/jobs/ID/logs?offset=N, POST /api/jobs/ID/cancel,
 * GET /api/nodes. The dashboard (/) and the OpenAPI document (/api/openapi.json) hold no data and need no token.
 */
final class RestApi extends AllDirectives {
    private static final ObjectMapper JSON = new ObjectMapper().disable(SerializationFeature.FAIL_ON_EMPTY_BEANS);
    private static final Duration ASK = Duration.ofSeconds(10);
    private final ActorSystem<?> system;
    private final ActorRef<ToCoordinator> coordinator;
    private final String bearer;

    private RestApi(ActorSystem<?> system, ActorRef<ToCoordinator> coordinator, String token) {
        this.system = system;
        this.coordinator = coordinator;
        this.bearer = "Bearer " + token;
    }

    static void bind(ActorSystem<?> system, ActorRef<ToCoordinator> coordinator, String host, int port, String token) {
        Http.get(system).newServerAt(host, port).bind(new RestApi(system, coordinator, token).routes()).toCompletableFuture().join();
        Log.info("coordinator: REST API at http://%s:%d/api", host, port);
    }

    /** The job submitted: its text, the name it came under, how long it may wait for ranks. */
    record SubmitRequest(String job, String source, Long waitTimeoutSeconds) {}

    private Route routes() {
        return concat(
                pathSingleSlash(() -> resource("dashboard.html", ContentTypes.TEXT_HTML_UTF8)),
                pathPrefix("api", () -> path("openapi.json", () -> resource("openapi.json", ContentTypes.APPLICATION_JSON))),
                authorized());
    }

    private Route resource(String name, org.apache.pekko.http.javadsl.model.ContentType type) {
        try (var in = RestApi.class.getResourceAsStream(name)) {
            return complete(HttpResponse.create().withEntity(type, in.readAllBytes()));
        } catch (java.io.IOException | NullPointerException e) {
            throw new IllegalStateException("the coordinator's " + name + " is missing from its jar", e);
        }
    }

    private Route authorized() {
        return extractRequest(request -> {
            if (!request.getHeader("Authorization").map(h -> h.value().equals(bearer)).orElse(false)) {
                Log.info("refused %s %s from %s: missing or wrong token", request.method().value(), request.getUri().path(),
                        request.getHeader("Remote-Address").map(h -> h.value()).orElse("a client"));
                return json(StatusCodes.UNAUTHORIZED, Map.of("error", "this cluster needs its token: Authorization: Bearer <token>"));
            }
            return pathPrefix("api", () -> concat(
                    path("jobs", () -> concat(
                            get(() -> ask(ListJobs::new, l -> json(StatusCodes.OK, l.jobs()))),
                            post(() -> entity(Unmarshaller.entityToString(), this::submit)))),
                    pathPrefix("jobs", () -> pathPrefix(segment(), id -> concat(
                            pathEnd(() -> get(() -> ask((ActorRef<JobView> r) -> new GetJob(id, r), j -> job(id, j)))),
                            path("curve", () -> get(() -> ask((ActorRef<Curve> r) -> new GetCurve(id, r), c -> c == null
                                    ? json(StatusCodes.NOT_FOUND, Map.of("error", "no job " + id + " on this cluster")) : json(StatusCodes.OK, c)))),
                            path("events", () -> get(() -> events(id))),
                            path("logs", () -> get(() -> parameterOptional("offset", offset -> ask((ActorRef<LogChunk> r) -> new GetLog(id,
                                    offset.map(Long::parseLong).orElse(0L), r), c -> json(StatusCodes.OK, c))))),
                            path("cancel", () -> post(() -> ask((ActorRef<JobView> r) -> new Cancel(id, r), j -> job(id, j))))))),
                    path("nodes", () -> get(() -> ask(ListNodes::new, n -> json(StatusCodes.OK, n))))));
        });
    }

    private Route submit(String body) {
        SubmitRequest req;
        try {
            req = JSON.readValue(body, SubmitRequest.class);
        } catch (Exception e) {
            return json(StatusCodes.BAD_REQUEST, Map.of("error", "the request body must be {\"job\": \"<job file text>\", \"source\": \"job.conf\"}: " + e.getMessage()));
        }
        if (req.job() == null || req.job().isBlank()) return json(StatusCodes.BAD_REQUEST, Map.of("error", "the request names no job: \"job\" is empty"));
        long wait = req.waitTimeoutSeconds() == null ? 0 : req.waitTimeoutSeconds() * 1000;
        String source = req.source() == null ? "submitted job" : req.source();
        return ask((ActorRef<Submitted> r) -> new Submit(req.job(), source, wait, r), s -> s.error() != null
                ? json(StatusCodes.BAD_REQUEST, Map.of("error", s.error())) : json(StatusCodes.CREATED, Map.of("id", s.id())));
    }

    /** The job as a server-sent event every second, until it has ended. */
    private Route events(String id) {
        org.apache.pekko.stream.javadsl.Source<org.apache.pekko.http.javadsl.model.sse.ServerSentEvent, org.apache.pekko.NotUsed> stream = org.apache.pekko.stream.javadsl.Source
                .tick(Duration.ZERO, Duration.ofSeconds(1), "tick")
                .mapAsync(1, t -> AskPattern.<ToCoordinator, JobView>ask(coordinator, r -> new GetJob(id, r), ASK, system.scheduler()))
                .takeWhile(j -> j != null && !List.of("succeeded", "failed", "cancelled").contains(j.state()), true)
                .map(j -> org.apache.pekko.http.javadsl.model.sse.ServerSentEvent.create(JSON.writeValueAsString(j), "job"))
                .mapMaterializedValue(ticks -> org.apache.pekko.NotUsed.getInstance());
        return completeOK(stream, org.apache.pekko.http.javadsl.marshalling.sse.EventStreamMarshalling.toEventStream());
    }

    private Route job(String id, JobView j) { return j == null ? json(StatusCodes.NOT_FOUND, Map.of("error", "no job " + id + " on this cluster")) : json(StatusCodes.OK, j); }

    private <T> Route ask(Function<ActorRef<T>, ToCoordinator> message, Function<T, Route> answer) {
        CompletionStage<T> reply = AskPattern.ask(coordinator, message::apply, ASK, system.scheduler());
        return onSuccess(reply, answer);
    }

    private Route json(org.apache.pekko.http.javadsl.model.StatusCode status, Object body) {
        try {
            return complete(HttpResponse.create().withStatus(status).withEntity(ContentTypes.APPLICATION_JSON, JSON.writeValueAsString(body)));
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }
}
