package dev.strata.trainer.finetune;

import dev.strata.trainer.data.Windows;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.TreeMap;

/**
 * Short examples packed whole into rows of T positions, best fit by decreasing length, so little of a row is
 * padding. Each example keeps its own targets (-1 where it does not train) and its document start, from which
 * attention and positions restart; padding is a document of its own with no targets.
 */
public final class PackedExamples implements Windows {
    private final List<TokenizedExample> examples;
    private final List<List<TokenizedExample>> rows;
    private final int seqLen, padId;

    public PackedExamples(List<TokenizedExample> examples, int seqLen, int padId) {
        this.examples = examples;
        this.seqLen = seqLen;
        this.padId = padId;
        this.rows = pack(examples, seqLen);
    }

    /** Best-fit decreasing: each example (longest first) goes into the row it fills most tightly, else a new row. */
    private static List<List<TokenizedExample>> pack(List<TokenizedExample> examples, int t) {
        List<TokenizedExample> sorted = new ArrayList<>(examples);
        sorted.sort(Comparator.comparingInt((TokenizedExample x) -> -x.ids().length).thenComparingInt(TokenizedExample::line));
        List<List<TokenizedExample>> rows = new ArrayList<>();
        TreeMap<Integer, List<Integer>> byRoom = new TreeMap<>(); // positions left -> rows with that much
        for (TokenizedExample x : sorted) {
            int need = x.positions();
            if (need > t) throw new IllegalArgumentException("line " + x.line() + ": " + x.ids().length + " tokens do not fit a row of " + t);
            var fit = byRoom.ceilingEntry(need);
            int row;
            if (fit == null) {
                row = rows.size();
                rows.add(new ArrayList<>());
                take(byRoom, t, row, need);
            } else {
                row = fit.getValue().remove(fit.getValue().size() - 1);
                if (fit.getValue().isEmpty()) byRoom.remove(fit.getKey());
                take(byRoom, fit.getKey(), row, need);
            }
            rows.get(row).add(x);
        }
        return rows;
    }

    private static void take(TreeMap<Integer, List<Integer>> byRoom, int room, int row, int need) {
        if (room - need > 0) byRoom.computeIfAbsent(room - need, k -> new ArrayList<>()).add(row);
    }

    @Override public long windows() { return rows.size(); }

    @Override public int seqLen() { return seqLen; }

    @Override public boolean packed() { return true; }

    @Override public void window(long w, int[] inputs, int[] targets, int row) {
        int at = row * seqLen, end = at + seqLen;
        for (TokenizedExample x : rows.get((int) w)) {
            x.writeInto(inputs, targets, at);
            at += x.positions();
        }
        java.util.Arrays.fill(inputs, at, end, padId);
        java.util.Arrays.fill(targets, at, end, -1);
    }

    @Override public void starts(long w, int[] starts, int row) {
        int at = 0, base = row * seqLen;
        for (TokenizedExample x : rows.get((int) w)) {
            java.util.Arrays.fill(starts, base + at, base + at + x.positions(), at);
            at += x.positions();
        }
        for (int p = at; p < seqLen; p++) starts[base + p] = p; // padding: each position alone
    }

    @Override public void checkVocabulary(int vocabSize) { TokenizedExample.checkVocabulary(examples, vocabSize); }

    /** The share of positions examples fill. */
    public double fill() {
        long used = examples.stream().mapToLong(TokenizedExample::positions).sum();
        return (double) used / ((long) rows.size() * seqLen);
    }
}
