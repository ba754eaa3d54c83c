// 32-bit accumulator register (sequential, one clock, no reset): each cycle
// acc <= (clr ? 0 : acc) + sign_extend(d), with d the 19-bit adder-tree sum. clr starts a
// new output (load d instead of adding). 32 flip-flops.
module acc32 (
    input  wire               clk,
    input  wire               clr,
    input  wire signed [18:0] d,
    output reg  signed [31:0] acc
);
    wire signed [31:0] base = clr ? 32'sd0 : acc;
    always @(posedge clk)
        acc <= base + {{13{d[18]}}, d};
endmodule
