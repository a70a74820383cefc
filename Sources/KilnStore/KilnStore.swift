// Content-addressed store and deterministic archives (see DESIGN.md, Identity and Cache layout).
public enum KilnStore {}
