package io.connguard.core.testing;

import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.List;

/**
 * The input format of the protocol fuzz targets: a fuzzer-mutated script of what arrives from each side
 * and how TCP cuts it up, so that the fuzzer chooses both the bytes and the read boundaries.
 *
 * <p>The first byte is a setup byte a target may read options from. Then records follow until the input
 * ends, each a control byte and, for byte records, a 2-byte big-endian length and that many bytes (fewer
 * if the input ends first). The control byte's low two bits are the {@link Op}; for byte records the
 * other six give the read size: 0 delivers the record in one read, {@code n} in reads of {@code n} bytes.
 * A {@link Op#KILL} record's other bits choose which {@link io.connguard.core.api.ProxyError.Kind} core
 * ends the session with. Seeds are written in this format by {@code fuzz/seeds.py}.
 */
public record FuzzScript(int setup, List<Step> steps) {

    public enum Op { CLIENT, SERVER, CONNECT, KILL }

    /** One record: for byte records the reads to deliver, in order; otherwise {@code argument}. */
    public record Step(Op op, List<byte[]> reads, int argument) {

        public byte[] bytes() {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            reads.forEach(out::writeBytes);
            return out.toByteArray();
        }
    }

    public static FuzzScript parse(byte[] input) {
        if (input.length == 0) {
            return new FuzzScript(0, List.of());
        }
        List<Step> steps = new ArrayList<>();
        int i = 1;
        while (i < input.length) {
            int control = input[i++] & 0xFF;
            Op op = Op.values()[control & 0x03];
            int argument = control >>> 2;
            if (op == Op.CONNECT || op == Op.KILL) {
                steps.add(new Step(op, List.of(), argument));
                continue;
            }
            int length = 0;
            for (int k = 0; k < 2 && i < input.length; k++) {
                length = length << 8 | (input[i++] & 0xFF);
            }
            int end = Math.min(input.length, i + length);
            List<byte[]> reads = new ArrayList<>();
            int size = argument == 0 ? Math.max(1, end - i) : argument;
            for (int at = i; at < end; at += size) {
                byte[] read = new byte[Math.min(size, end - at)];
                System.arraycopy(input, at, read, 0, read.length);
                reads.add(read);
            }
            steps.add(new Step(op, reads, argument));
            i = end;
        }
        return new FuzzScript(input[0] & 0xFF, steps);
    }

    /** Every byte of the given direction, in order. */
    public byte[] stream(Op direction) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        steps.stream().filter(step -> step.op() == direction).forEach(step -> out.writeBytes(step.bytes()));
        return out.toByteArray();
    }
}
