int kiln_placeholder(void);
