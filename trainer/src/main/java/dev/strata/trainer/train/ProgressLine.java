package dev.strata.trainer.train;

import java.io.PrintStream;
import java.util.Locale;

/** The console's live progress line: step, loss, lr, tokens/s (of every rank), the world size, ETA. Redrawn in place on a terminal. */
final class ProgressLine {
    private final PrintStream out;
    // System.console() is not null on a pipe since JDK 22; the launcher says whether stdout is a terminal.
    private final boolean live = Boolean.getBoolean("strata.tty") && !"dumb".equals(System.getenv("TERM"));
    private final String ranks; // "" on one rank
    private boolean open;

    ProgressLine(PrintStream out, int worldSize) {
        this.out = out;
        this.ranks = worldSize > 1 ? " on " + worldSize + " ranks" : "";
    }

    void update(long step, long total, double loss, double lr, double gradNorm, double tokensPerSecond, double etaSeconds) {
        String line = String.format(Locale.ROOT, "step %6d/%d | loss %.4f | lr %.2e | grad norm %.3f | %,.0f tok/s%s | ETA %s",
                step, total, loss, lr, gradNorm, tokensPerSecond, ranks, duration(etaSeconds));
        if (live) {
            out.print("\r" + line + "\u001b[K");
            open = true;
        } else {
            out.println(line);
        }
        out.flush();
    }

    /** A message on its own line, below the live line. */
    void message(String text) {
        if (open) out.println();
        open = false;
        out.println(text);
    }

    static String duration(double seconds) {
        if (!Double.isFinite(seconds)) return "?";
        long s = Math.round(seconds);
        return s >= 3600 ? String.format("%dh%02dm", s / 3600, s / 60 % 60) : s >= 60 ? String.format("%dm%02ds", s / 60, s % 60) : s + "s";
    }
}
