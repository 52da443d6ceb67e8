package io.connguard.core.admin;

import io.connguard.core.logging.JsonText;

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
        JsonText.quote(out, s);
    }
}
