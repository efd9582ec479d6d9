package dev.strata.trainer.train;

import static org.junit.jupiter.api.Assertions.assertFalse;

import dev.strata.config.JobConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/** Every job file under examples/ reads without an error: a renamed or misspelled key fails here, not for a user. */
class ExampleJobsTest {
    @Test
    void everyExampleJobReads() throws Exception {
        List<Path> jobs;
        try (Stream<Path> files = Files.walk(Path.of("..", "examples"))) {
            jobs = files.filter(p -> p.toString().endsWith(".conf") && !p.toString().contains("target")).toList();
        }
        assertFalse(jobs.isEmpty(), "no job files found under " + Path.of("..", "examples").toAbsolutePath());
        for (Path job : jobs) JobConfig.load(job);
    }
}
