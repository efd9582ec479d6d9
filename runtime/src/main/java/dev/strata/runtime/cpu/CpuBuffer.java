package dev.strata.runtime.cpu;

/** Heap memory behind a CPU tensor; element access goes through doubles so each op is written once for F32 and F64. */
sealed interface CpuBuffer {
    double get(int i);

    void set(int i, double v);

    int length();

    /** Σ this[i+e]·o[j+e] for e < n, accumulated in double (SIMD when both are F32). */
    default double dot(int i, CpuBuffer o, int j, int n) {
        double s = 0;
        for (int e = 0; e < n; e++) s += get(i + e) * o.get(j + e);
        return s;
    }

    /** acc[k+e] += alpha·this[i+e] for e < n. */
    default void addScaledTo(double[] acc, int k, double alpha, int i, int n) {
        for (int e = 0; e < n; e++) acc[k + e] += alpha * get(i + e);
    }

    record F64(double[] a) implements CpuBuffer {
        public double get(int i) { return a[i]; }
        public void set(int i, double v) { a[i] = v; }
        public int length() { return a.length; }
    }

    record F32(float[] a) implements CpuBuffer {
        public double get(int i) { return a[i]; }
        public void set(int i, double v) { a[i] = (float) v; }
        public int length() { return a.length; }

        @Override public double dot(int i, CpuBuffer o, int j, int n) {
            return o instanceof F32 f ? VectorMath.dot(a, i, f.a, j, n) : CpuBuffer.super.dot(i, o, j, n);
        }

        @Override public void addScaledTo(double[] acc, int k, double alpha, int i, int n) {
            for (int e = 0; e < n; e++) acc[k + e] += alpha * a[i + e];
        }
    }

    record I32(int[] a) implements CpuBuffer {
        public double get(int i) { return a[i]; }
        public void set(int i, double v) { a[i] = (int) v; }
        public int length() { return a.length; }
    }
}
