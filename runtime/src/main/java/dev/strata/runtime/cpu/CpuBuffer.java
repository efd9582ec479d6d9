package dev.strata.runtime.cpu;

/** Heap memory behind a CPU tensor; element access goes through doubles so each op is written once for F32 and F64. */
sealed interface CpuBuffer {
    double get(int i);

    void set(int i, double v);

    int length();

    record F64(double[] a) implements CpuBuffer {
        public double get(int i) { return a[i]; }
        public void set(int i, double v) { a[i] = v; }
        public int length() { return a.length; }
    }

    record F32(float[] a) implements CpuBuffer {
        public double get(int i) { return a[i]; }
        public void set(int i, double v) { a[i] = (float) v; }
        public int length() { return a.length; }
    }

    record I32(int[] a) implements CpuBuffer {
        public double get(int i) { return a[i]; }
        public void set(int i, double v) { a[i] = (int) v; }
        public int length() { return a.length; }
    }
}
