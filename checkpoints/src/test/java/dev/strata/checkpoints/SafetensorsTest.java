package dev.strata.checkpoints;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.runtime.DType;
import dev.strata.runtime.HostTensor;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsTest {
    final LocalStorage fs = new LocalStorage();

    @Test
    void everyDtypeRoundTrips(@TempDir Path dir) throws Exception {
        double[] floats = {1.5, -2.25, 3.0e-3, 65504, -0.0, 7};
        Map<String, HostTensor> tensors = new LinkedHashMap<>();
        for (DType d : new DType[] {DType.F64, DType.F32, DType.BF16, DType.F16, DType.I64, DType.I32})
            tensors.put("t." + d, HostTensor.ofDoubles(d.isFloatingPoint() ? floats : new double[] {1, -2, 3, 40000, 0, 7}, d, 2, 3));
        tensors.put("u8", new HostTensor(DType.U8, new int[] {3}, java.nio.ByteBuffer.wrap(new byte[] {1, (byte) 200, 3})));
        Path file = dir.resolve("x.safetensors");
        try (OutputStream out = Files.newOutputStream(file)) {
            Safetensors.write(out, tensors, Map.of("format", "pt"));
        }
        var back = Safetensors.read(fs, file.toString());
        assertEquals("pt", back.metadata().get("format"));
        assertEquals(tensors.keySet(), back.tensors().keySet());
        assertArrayEquals(floats, back.tensors().get("t.F64").toDoubles());
        assertArrayEquals(floats, back.tensors().get("t.F32").toDoubles(), 1e-7 * 65504);
        double[] bf = back.tensors().get("t.BF16").toDoubles();
        for (int i = 0; i < floats.length; i++) assertEquals(floats[i], bf[i], Math.abs(floats[i]) / 128, "bf16 " + i);
        assertArrayEquals(floats, back.tensors().get("t.F16").toDoubles(), 1e-3);
        assertArrayEquals(new int[] {1, -2, 3, 40000, 0, 7}, back.tensors().get("t.I64").toInts());
        assertArrayEquals(new int[] {1, 200, 3}, back.tensors().get("u8").toInts());
        assertTrue((8 + Files.readAllBytes(file)[0]) % 8 == 0, "header padded to 8 bytes");
    }

    @Test
    void bf16RoundsToNearestEven() {
        // 1 + 2^-8 lies halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to the even mantissa, 1.
        assertEquals(1.0, HostTensor.ofDoubles(new double[] {1 + Math.pow(2, -8)}, DType.BF16, 1).toDoubles()[0]);
        assertEquals(1 + Math.pow(2, -6), HostTensor.ofDoubles(new double[] {1 + 3 * Math.pow(2, -8)}, DType.BF16, 1).toDoubles()[0]);
    }

    @Test
    void truncatedFileIsRefusedWithItsName(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("cut.safetensors");
        try (OutputStream out = Files.newOutputStream(file)) {
            Safetensors.write(out, Map.of("w", HostTensor.ofDoubles(new double[64], DType.F32, 8, 8)), Map.of());
        }
        byte[] all = Files.readAllBytes(file);
        Files.write(file, java.util.Arrays.copyOf(all, all.length - 10));
        var e = assertThrows(IllegalArgumentException.class, () -> Safetensors.read(fs, file.toString()));
        assertTrue(e.getMessage().contains(file.toString()) && e.getMessage().contains("'w'") && e.getMessage().contains("truncated"), e.getMessage());
        Files.write(file, new byte[] {1, 2, 3});
        var tiny = assertThrows(IllegalArgumentException.class, () -> Safetensors.read(fs, file.toString()));
        assertTrue(tiny.getMessage().contains("shorter than the 8-byte header"), tiny.getMessage());
    }
}
