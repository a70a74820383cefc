// placeholder
public enum KilnSandboxModule {}
