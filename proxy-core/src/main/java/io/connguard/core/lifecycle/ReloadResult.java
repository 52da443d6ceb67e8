package io.connguard.core.lifecycle;

import java.util.List;

/**
 * What a reload did.
 *
 * @param status  applied, unchanged, invalid (the file does not validate) or refused (needs a restart)
 * @param reasons the validation errors or restart reasons; empty when applied
 */
public record ReloadResult(Status status, List<String> reasons) {

    public enum Status { APPLIED, UNCHANGED, INVALID, REFUSED }

    public static ReloadResult applied() {
        return new ReloadResult(Status.APPLIED, List.of());
    }

    public static ReloadResult unchanged() {
        return new ReloadResult(Status.UNCHANGED, List.of());
    }

    public static ReloadResult invalid(List<String> errors) {
        return new ReloadResult(Status.INVALID, List.copyOf(errors));
    }

    public static ReloadResult refused(List<String> reasons) {
        return new ReloadResult(Status.REFUSED, List.copyOf(reasons));
    }

    public boolean ok() {
        return status == Status.APPLIED || status == Status.UNCHANGED;
    }
}
