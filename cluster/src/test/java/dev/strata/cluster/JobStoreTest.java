package dev.strata.cluster;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Jobs, their progress and the nodes' addresses come back from the database as they were written, after it is closed and opened again. */
class JobStoreTest {
    @Test
    void whatWasRecordedComesBack(@TempDir Path dir) {
        String url = "jdbc:h2:file:" + dir.resolve("jobs");
        try (JobStore store = JobStore.open(url, "", "")) {
            ClusterJob a = new ClusterJob("job-0001", "{\"parallel\": {\"dp\": 2}}", "a.conf", 0, 1000);
            a.dp = 2;
            a.pp = a.tp = 1;
            a.startAttempt(new String[] {"w0", "w1"}, new int[] {31000, 31001});
            a.finished.add(1);
            a.step = 7;
            a.loss = 3.25;
            store.save(a);
            a.state = "running";
            store.save(a); // an update, not a second row
            store.save(new ClusterJob("job-0002", "{}", "b.conf", 5000, 2000));
            for (long s = 1; s <= 6; s++) store.progress("job-0001", s, 10 - s, 100 * s);
            store.progress("job-0001", 4, 0.5, 1); // a restart from step 3's checkpoint repeats step 4 on: 5 and 6 are gone
            store.node("w0", "pekko://strata-cluster@127.0.0.1:40001");
            store.node("w1", "pekko://strata-cluster@127.0.0.1:40002");
            store.node("w1", null);
        }
        try (JobStore store = JobStore.open(url, "", "")) {
            List<ClusterJob> jobs = store.jobs();
            assertEquals(List.of("job-0001", "job-0002"), jobs.stream().map(j -> j.id).toList());
            ClusterJob a = jobs.get(0);
            assertEquals("running", a.state);
            assertTrue(a.live);
            assertArrayEquals(new String[] {"w0", "w1"}, a.nodes);
            assertArrayEquals(new int[] {31000, 31001}, a.ports);
            assertEquals(java.util.Set.of(1), a.finished);
            assertEquals(3.25, a.loss);
            assertTrue(Double.isNaN(a.mfu), "NaN survives the round trip");
            assertEquals(List.of(1L, 2L, 3L, 4L), List.copyOf(a.curve.keySet()));
            assertEquals(0.5, a.curve.get(4L)[0]);
            assertEquals(5000, jobs.get(1).waitTimeoutMs);
            assertEquals(List.of("pekko://strata-cluster@127.0.0.1:40001"), store.nodeAddresses());
        }
    }

    @Test
    void aDatabaseThatCannotBeOpenedIsOneLine(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("jobs.mv.db"), "not a database");
        var e = assertThrows(IllegalArgumentException.class, () -> JobStore.open("jdbc:h2:file:" + dir.resolve("jobs"), "", ""));
        assertTrue(e.getMessage().startsWith("--db jdbc:h2:file:" + dir.resolve("jobs") + ": cannot open the coordinator's job database ("), e.getMessage());
        assertTrue(!e.getMessage().contains("\n"), e.getMessage());
        var none = assertThrows(IllegalArgumentException.class, () -> JobStore.open("jdbc:nosuch:x", "", ""));
        assertTrue(none.getMessage().contains("--db jdbc:nosuch:x"), none.getMessage());
    }
}
