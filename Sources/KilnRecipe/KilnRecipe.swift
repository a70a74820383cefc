// The recipe model and its YAML decoding (the recipes issue builds this module).
public enum KilnRecipe {}
