// FlexNN sparsity find-first, W = 16: index of the lowest set bit of a W-bit combined
// (activation AND weight) bitmap, a valid flag, and the bitmap with that bit cleared
// (fed back for the next cycle). Combinational.
module find_first16 (
    input  wire [15:0] m,
    output wire [3:0]  idx,
    output wire        valid,
    output wire [15:0] rest
);
    localparam W = 16, L = 4;
    wire [W-1:0] seen;   // seen[i] = |m[i-1:0]
    wire [W-1:0] hot;    // one-hot lowest set bit
    assign seen[0] = 1'b0;
    genvar i, j;
    generate
        for (i = 1; i < W; i = i + 1) begin : pre
            assign seen[i] = seen[i-1] | m[i-1];
        end
        for (i = 0; i < W; i = i + 1) begin : oh
            assign hot[i] = m[i] & ~seen[i];
        end
        for (j = 0; j < L; j = j + 1) begin : enc
            wire [W-1:0] sel;
            for (i = 0; i < W; i = i + 1) begin : s
                assign sel[i] = ((i >> j) & 1) ? hot[i] : 1'b0;
            end
            assign idx[j] = |sel;
        end
    endgenerate
    assign valid = |m;
    assign rest  = m & ~hot;
endmodule
