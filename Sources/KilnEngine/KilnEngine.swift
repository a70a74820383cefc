// The planner, scheduler and executor (the pipeline issue builds this module).
import KilnSandbox
import KilnStore

public enum KilnEngine {}
