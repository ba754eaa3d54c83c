// Baseline MAC multiplier: signed 8-bit activation x signed 8-bit weight -> 16-bit product.
// Combinational. This is the ratio denominator in experiments/hw/synth/components.json.
module mult8x8 (
    input  wire signed [7:0]  a,
    input  wire signed [7:0]  w,
    output wire signed [15:0] p
);
    assign p = a * w;
endmodule
