package io.connguard.core.auth;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * Reads {@code auth.usersFile}: PgBouncer's {@code userlist.txt} form, one {@code "user" "password"} per
 * line, a double quote inside a field written twice, blank lines and lines starting with {@code ;} or
 * {@code #} ignored, anything after the second field ignored. Passwords are plaintext: connguard needs
 * the password itself to log in with SCRAM or md5, so the hashed forms PgBouncer also accepts are refused
 * with a clear message rather than half supported.
 *
 * <p>Error messages name the line, never its content: the file holds passwords.
 */
public final class UsersFile {

    private static final Pattern MD5_HASH = Pattern.compile("md5[0-9a-f]{32}");

    /** The file could not be read or a line is malformed. */
    public static final class Invalid extends Exception {
        private static final long serialVersionUID = 1L;

        Invalid(String message) {
            super(message);
        }
    }

    private UsersFile() {
    }

    /** The user → password map the file holds. */
    public static Map<String, String> read(Path file) throws Invalid {
        String text;
        try {
            text = Files.readString(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new Invalid("cannot read users file " + file + ": " + e.getClass().getSimpleName());
        }
        return parse(text);
    }

    static Map<String, String> parse(String text) throws Invalid {
        Map<String, String> users = new HashMap<>();
        String[] lines = text.split("\r?\n", -1);
        for (int i = 0; i < lines.length; i++) {
            String line = lines[i].strip();
            if (line.isEmpty() || line.startsWith(";") || line.startsWith("#")) {
                continue;
            }
            List<String> fields = fields(line);
            if (fields == null || fields.size() < 2) {
                throw new Invalid("line " + (i + 1) + ": expected \"user\" \"password\"");
            }
            String user = fields.get(0);
            String password = fields.get(1);
            if (user.isEmpty()) {
                throw new Invalid("line " + (i + 1) + ": empty user name");
            }
            if (MD5_HASH.matcher(password).matches() || password.startsWith("SCRAM-SHA-256$")) {
                throw new Invalid("line " + (i + 1) + ": a hashed password (md5 or SCRAM secret); connguard needs the "
                        + "plaintext password to log in to the database with it");
            }
            if (users.putIfAbsent(user, password) != null) {
                throw new Invalid("line " + (i + 1) + ": user '" + user + "' is listed twice");
            }
        }
        return Map.copyOf(users);
    }

    /** The quoted fields at the start of a line (the first two are what counts), or null when malformed. */
    private static List<String> fields(String line) {
        List<String> fields = new ArrayList<>(2);
        int i = 0;
        int n = line.length();
        while (fields.size() < 2) {
            while (i < n && Character.isWhitespace(line.charAt(i))) {
                i++;
            }
            if (i >= n || line.charAt(i) != '"') {
                return fields.size() == 2 ? fields : null;
            }
            StringBuilder field = new StringBuilder();
            i++;
            boolean closed = false;
            while (i < n) {
                char c = line.charAt(i++);
                if (c == '"') {
                    if (i < n && line.charAt(i) == '"') {
                        field.append('"');
                        i++;
                    } else {
                        closed = true;
                        break;
                    }
                } else {
                    field.append(c);
                }
            }
            if (!closed) {
                return null;
            }
            fields.add(field.toString());
        }
        return fields;
    }
}
