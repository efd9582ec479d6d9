package dev.strata.runtime;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * A tensor's raw little-endian bytes in host memory, as a file holds them: what safetensors readers produce and
 * writers consume. The bytes may be a memory-mapped window of a file.
 */
public record HostTensor(DType dtype, int[] shape, ByteBuffer data) {

    /** {@code data} is used from its position to its limit, read as little-endian. */
    public HostTensor {
        shape = shape.clone();
        data = data.slice().order(ByteOrder.LITTLE_ENDIAN);
        long expected = Tensor.numel(shape) * dtype.byteSize();
        if (data.remaining() != expected)
            throw new IllegalArgumentException(dtype.safetensorsName() + Arrays.toString(shape) + " needs " + expected
                    + " bytes, got " + data.remaining());
    }

    public long numel() { return Tensor.numel(shape); }

    public long byteSize() { return data.remaining(); }

    /** Every element widened to double; integer and 8-bit float types are not converted here. */
    public double[] toDoubles() {
        int n = Math.toIntExact(numel());
        double[] out = new double[n];
        for (int i = 0; i < n; i++) {
            out[i] = switch (dtype) {
                case F64 -> data.getDouble(8 * i);
                case F32 -> data.getFloat(4 * i);
                case BF16 -> Float.intBitsToFloat((data.getShort(2 * i) & 0xffff) << 16);
                case F16 -> Float.float16ToFloat(data.getShort(2 * i));
                case I64 -> data.getLong(8 * i);
                case I32 -> data.getInt(4 * i);
                case U8 -> data.get(i) & 0xff;
                default -> throw new UnsupportedOperationException("cannot widen " + dtype + " to double");
            };
        }
        return out;
    }

    /** How many elements are NaN or infinite (0 for integer and 8-bit float types, which hold neither here). */
    public long nonFiniteCount() {
        long n = numel(), bad = 0;
        for (long i = 0; i < n; i++) {
            int at = Math.toIntExact(i * dtype.byteSize());
            boolean finite = switch (dtype) {
                case F64 -> Double.isFinite(data.getDouble(at));
                case F32 -> Float.isFinite(data.getFloat(at));
                case BF16 -> (data.getShort(at) & 0x7f80) != 0x7f80;
                case F16 -> (data.getShort(at) & 0x7c00) != 0x7c00;
                default -> true;
            };
            if (!finite) bad++;
        }
        return bad;
    }

    /** Integer elements (I64 must fit in an int, as token ids do). */
    public int[] toInts() {
        int n = Math.toIntExact(numel());
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            out[i] = switch (dtype) {
                case I64 -> {
                    long x = data.getLong(8 * i);
                    if (x != (int) x) throw new IllegalArgumentException("element " + i + " = " + x + " does not fit a 32-bit integer");
                    yield (int) x;
                }
                case I32 -> data.getInt(4 * i);
                case U8 -> data.get(i) & 0xff;
                default -> throw new IllegalArgumentException("expected an integer tensor, got " + dtype);
            };
        }
        return out;
    }

    /** Encodes values in the given floating dtype (BF16 and F16 round to nearest even). */
    public static HostTensor ofDoubles(double[] values, DType dtype, int... shape) {
        ByteBuffer buf = ByteBuffer.allocate(Math.multiplyExact(values.length, dtype.byteSize())).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < values.length; i++) {
            switch (dtype) {
                case F64 -> buf.putDouble(8 * i, values[i]);
                case F32 -> buf.putFloat(4 * i, (float) values[i]);
                case BF16 -> buf.putShort(2 * i, toBf16((float) values[i]));
                case F16 -> buf.putShort(2 * i, Float.floatToFloat16((float) values[i]));
                case I64 -> buf.putLong(8 * i, (long) values[i]);
                case I32 -> buf.putInt(4 * i, (int) values[i]);
                default -> throw new UnsupportedOperationException("cannot encode doubles as " + dtype);
            }
        }
        return new HostTensor(dtype, shape, buf);
    }

    public static HostTensor ofInts(int[] values, DType dtype, int... shape) {
        double[] d = new double[values.length];
        for (int i = 0; i < d.length; i++) d[i] = values[i];
        return ofDoubles(d, dtype, shape);
    }

    /** Round-to-nearest-even truncation of an F32 to BF16; NaN stays NaN. */
    public static short toBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if (Float.isNaN(f)) return (short) ((bits >>> 16) | 0x40);
        int rounding = 0x7fff + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }

    /** The first {@code count} rows (dim 0), or all of them followed by zero rows up to count. */
    public HostTensor withRows(int count) {
        int[] s = shape.clone();
        s[0] = count;
        long bytes = Tensor.numel(s) * dtype.byteSize();
        if (count <= shape[0]) return new HostTensor(dtype, s, data.slice(0, Math.toIntExact(bytes)));
        ByteBuffer padded = ByteBuffer.allocate(Math.toIntExact(bytes)).put(data.duplicate()).rewind();
        return new HostTensor(dtype, s, padded);
    }

    /** Uploads to a backend in the given dtype (as raw bytes when it is this tensor's own). */
    public Tensor to(Backend backend, DType target) {
        if (target == dtype && dtype.isFloatingPoint()) return backend.fromBytes(data, dtype, shape);
        if (!target.isFloatingPoint()) return backend.fromInts(toInts(), shape);
        return backend.fromDoubles(toDoubles(), target, shape);
    }

    /** Downloads a backend tensor, stored in the given dtype (as raw bytes when it is the tensor's own). */
    public static HostTensor of(Tensor t, DType stored) {
        if (stored == t.dtype()) return new HostTensor(stored, t.shape(), t.backend().toBytes(t));
        if (!t.dtype().isFloatingPoint()) return ofInts(t.backend().toInts(t), stored, t.shape());
        return ofDoubles(t.backend().toDoubles(t), stored, t.shape());
    }
}
