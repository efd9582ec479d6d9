package dev.strata.config;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigValue;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Rejects keys that reference.conf does not define, suggesting the closest known key. */
final class KeyCheck {
    private KeyCheck() {}

    static void rejectUnknown(Config user, Config reference, String source) {
        List<String> known = new ArrayList<>();
        for (Map.Entry<String, ConfigValue> e : reference.entrySet()) known.add(e.getKey());
        for (Map.Entry<String, ConfigValue> e : user.entrySet()) {
            String key = e.getKey();
            if (reference.hasPathOrNull(key) || key.startsWith("strata.presets.")) continue;
            String shown = key.replaceFirst("^strata\\.", "");
            String closest = closest(key, known).replaceFirst("^strata\\.", "");
            int line = e.getValue().origin().lineNumber();
            throw new ConfigError(source + (line > 0 ? ":" + line : "") + ": unknown key '" + shown + "'"
                    + (closest.isEmpty() ? "" : "; did you mean '" + closest + "'?"));
        }
    }

    private static String closest(String key, List<String> known) {
        String best = "";
        int bestDistance = Integer.MAX_VALUE;
        for (String k : known) {
            int d = distance(key, k);
            if (d < bestDistance) {
                bestDistance = d;
                best = k;
            }
        }
        return bestDistance <= Math.max(3, key.length() / 3) ? best : "";
    }

    /** Levenshtein distance. */
    private static int distance(String a, String b) {
        int[] prev = new int[b.length() + 1], cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) prev[j] = j;
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            for (int j = 1; j <= b.length(); j++)
                cur[j] = Math.min(Math.min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1));
            int[] t = prev;
            prev = cur;
            cur = t;
        }
        return prev[b.length()];
    }
}
