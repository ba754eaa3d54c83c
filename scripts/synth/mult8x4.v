// Low-precision multiplier: signed 8-bit activation x signed 4-bit weight -> 12-bit product.
module mult8x4 (
    input  wire signed [7:0]  a,
    input  wire signed [3:0]  w,
    output wire signed [11:0] p
);
    assign p = a * w;
endmodule
