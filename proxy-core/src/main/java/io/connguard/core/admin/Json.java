package io.connguard.core.admin;

/** A small JSON writer for the admin API's views (objects, arrays, strings, numbers, booleans, null). */
final class Json {

    private final StringBuilder out = new StringBuilder(256);
    private boolean first = true;

    Json beginObject() {
        separator();
        out.append('{');
        first = true;
        return this;
    }

    Json endObject() {
        out.append('}');
        first = false;
        return this;
    }

    Json beginArray() {
        separator();
        out.append('[');
        first = true;
        return this;
    }

    Json endArray() {
        out.append(']');
        first = false;
        return this;
    }

    Json name(String name) {
        separator();
        string(name);
        out.append(':');
        first = true;
        return this;
    }

    Json value(String value) {
        separator();
        if (value == null) {
            out.append("null");
        } else {
            string(value);
        }
        return this;
    }

    Json value(long value) {
        separator();
        out.append(value);
        return this;
    }

    Json value(boolean value) {
        separator();
        out.append(value);
        return this;
    }

    Json nullValue() {
        separator();
        out.append("null");
        return this;
    }

    Json field(String name, String value) {
        return name(name).value(value);
    }

    Json field(String name, long value) {
        return name(name).value(value);
    }

    Json field(String name, boolean value) {
        return name(name).value(value);
    }

    @Override
    public String toString() {
        return out.toString();
    }

    private void separator() {
        if (!first) {
            out.append(',');
        }
        first = false;
    }

    private void string(String s) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (c < 0x20 || c == 0x2028 || c == 0x2029) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }
}
