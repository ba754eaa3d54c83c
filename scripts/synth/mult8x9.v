// Signed 8-bit activation x signed 9-bit weight -> 17-bit product. For completeness only:
// after StruM demotion a weight can be +128 (|w| <= 128), which an 8-bit signed operand cannot
// hold. mult8x8 stays the baseline; this shows what the ninth weight bit costs.
module mult8x9 (
    input  wire signed [7:0]  a,
    input  wire signed [8:0]  w,
    output wire signed [16:0] p
);
    assign p = a * w;
endmodule
