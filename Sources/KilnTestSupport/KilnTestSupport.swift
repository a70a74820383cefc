// Shared fixtures for the test targets.
public enum KilnTestSupport {}
