package dev.strata.config;

import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigIncludeContext;
import com.typesafe.config.ConfigIncluder;
import com.typesafe.config.ConfigIncluderFile;
import com.typesafe.config.ConfigObject;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Resolves a job file's {@code include "x.conf"} (and {@code include file("x.conf")}) against the including file's
 * directory and refuses one that is missing: HOCON would silently include nothing, and the job would run on defaults.
 */
final class RequiredIncluder implements ConfigIncluder, ConfigIncluderFile {
    private final Path from;

    RequiredIncluder(Path jobFile) { this.from = jobFile; }

    @Override public ConfigIncluder withFallback(ConfigIncluder fallback) { return this; }

    @Override public ConfigObject include(ConfigIncludeContext context, String what) { return include(context, new File(what)); }

    @Override public ConfigObject includeFile(ConfigIncludeContext context, File what) { return include(context, what); }

    private ConfigObject include(ConfigIncludeContext context, File what) {
        Path dir = from.toAbsolutePath().getParent(), target = what.isAbsolute() ? what.toPath() : dir.resolve(what.getPath());
        if (!Files.isRegularFile(target))
            throw new ConfigError("job file " + from + ": include \"" + what + "\" names " + target + ", which does not exist");
        return ConfigFactory.parseFile(target.toFile(), context.parseOptions().setAllowMissing(false).setIncluder(new RequiredIncluder(target))).root();
    }
}
